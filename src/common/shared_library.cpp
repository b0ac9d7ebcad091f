#include "common/shared_library.h"

#include <dlfcn.h>

namespace sw {

Result<SharedLibrary> SharedLibrary::open(const std::string& name) {
  // RTLD_NODELETE: a library's initialisers (and its dependencies', e.g. libgomp under libsoxr)
  // may allocate and keep the pointer in their globals; unmapping it on dlclose would leak that
  // memory and leave later loads to run them again. A close only drops the reference.
  void* handle = ::dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (handle == nullptr) {
    const char* why = ::dlerror();
    const std::string reason = why != nullptr ? why : "dlopen failed";
    return fail(Error::not_found("{}", reason));
  }
  return SharedLibrary(name, handle);
}

SharedLibrary& SharedLibrary::operator=(SharedLibrary&& other) noexcept {
  if (this != &other) {
    if (handle_ != nullptr) ::dlclose(handle_);
    name_ = std::move(other.name_);
    handle_ = std::exchange(other.handle_, nullptr);
  }
  return *this;
}

SharedLibrary::~SharedLibrary() {
  if (handle_ != nullptr) ::dlclose(handle_);
}

void* SharedLibrary::address(const char* symbol) const {
  // keep_open() forgets the handle; RTLD_DEFAULT would then search the wrong scope.
  if (handle_ == nullptr) return nullptr;
  return ::dlsym(handle_, symbol);
}

Status SharedLibrary::missing(const char* symbol) const {
  return fail(Error::not_found("{} has no `{}`", name_, symbol));
}

}  // namespace sw

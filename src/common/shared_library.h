#pragma once
// A shared library opened at run time with dlopen (issue 19: an idle worker carries only what it
// uses; a library an engine, a transfer or a codec needs is opened when first used, not linked).
// Entry points are bound to the types of the library's own header, `decltype(&::function)`, so
// the compiler checks every pointer against the declaration the build would have linked.
//
// A table of entry points is an X-macro list of function names:
//   #define SW_PNG_ENTRY_POINTS(X) X(png_create_write_struct) X(png_write_row) ...
//   struct PngApi { SW_PNG_ENTRY_POINTS(SW_ENTRY_POINT_MEMBER) };
//   ... SW_PNG_ENTRY_POINTS(SW_BIND_ENTRY_POINT)  (inside a function, see below)
//
// Thread-safety: a SharedLibrary is owned by one caller; dlopen/dlsym themselves are thread-safe.

#include <string>
#include <utility>

#include "common/error.h"

namespace sw {

class SharedLibrary {
 public:
  // dlopen(name, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE): a file name (searched as the dynamic
  // loader searches: LD_LIBRARY_PATH, the cache, the default directories) or a path. NotFound
  // naming the loader's error when it cannot be opened.
  static Result<SharedLibrary> open(const std::string& name);

  SharedLibrary(SharedLibrary&& other) noexcept
      : name_(std::move(other.name_)), handle_(std::exchange(other.handle_, nullptr)) {}
  SharedLibrary& operator=(SharedLibrary&& other) noexcept;
  SharedLibrary(const SharedLibrary&) = delete;
  SharedLibrary& operator=(const SharedLibrary&) = delete;
  // dlclose, unless keep_open() ran: close only a library none of whose functions were called.
  // The library stays mapped either way (RTLD_NODELETE); the close drops the reference.
  ~SharedLibrary();

  // The entry point `symbol` as Fn, or nullptr when the library has none by that name.
  template <class Fn>
  Fn find(const char* symbol) const {
    return reinterpret_cast<Fn>(address(symbol));
  }
  // Binds `into` to `symbol`; NotFound naming the library and the symbol when it lacks it.
  template <class Fn>
  Status bind(const char* symbol, Fn& into) const {
    into = find<Fn>(symbol);
    if (into == nullptr) return missing(symbol);
    return {};
  }

  // The library stays loaded for the rest of the process (its functions are bound into a
  // process-wide table, or it keeps global state that a dlclose would tear down under a caller).
  void keep_open() { handle_ = nullptr; }

  const std::string& name() const { return name_; }

 private:
  SharedLibrary(std::string name, void* handle) : name_(std::move(name)), handle_(handle) {}
  void* address(const char* symbol) const;
  Status missing(const char* symbol) const;

  std::string name_;
  void* handle_ = nullptr;
};

}  // namespace sw

// A member of an entry-point table: `decltype(&::fn) fn = nullptr;`.
#define SW_ENTRY_POINT_MEMBER(fn) decltype(&::fn) fn = nullptr;
// Binds table member `fn` from `library` into `table`, stopping at the first missing one; expects
// `sw::SharedLibrary library`, a table `table` and `sw::Status bound` (initially OK) in scope.
#define SW_BIND_ENTRY_POINT(fn) \
  if (bound) bound = library.bind(#fn, table.fn);

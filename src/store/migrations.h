#pragma once
// The studio's schema, as numbered migrations applied at start (store::migrate).

#include <span>

#include "store/sqlite.h"

namespace sw::store {

std::span<const Migration> studio_migrations();

}  // namespace sw::store

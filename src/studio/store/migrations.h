#pragma once
// The studio's schema, as numbered migrations applied at start (sql::migrate on SQLite,
// sql::pg::migrate on PostgreSQL): each step has the same number and a text per dialect.

#include <span>

#include "sql/migration.h"

namespace sw::store {

std::span<const sql::Migration> studio_migrations();

}  // namespace sw::store

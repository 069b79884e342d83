// Backend: the store that --store names and the presence service on it,
// with the write path that fits the store (core/presence_writer.h): a
// LocalWriter on the embedded SQLite store, a ReplicaWriter on Redis.
#ifndef PRESENCE_APP_BACKEND_H_
#define PRESENCE_APP_BACKEND_H_

#include <memory>

#include "api/api_options.h"
#include "app/flags.h"
#include "core/presence_service.h"
#include "store/faulty_store.h"
#include "store/redis_store.h"
#include "store/sqlite_store.h"
#include "util/clock.h"

namespace presence::app {

struct Backend {
  // Exactly one of sqlite / redis is set.
  std::unique_ptr<store::SqliteStore> sqlite;
  std::unique_ptr<store::RedisStore> redis;
  // --test-faults: wraps the SQLite store (POST /admin/v1/faults).
  std::unique_ptr<store::FaultyStore> faulty;
  std::unique_ptr<PresenceService> service;
};

// Opens the store and loads the service. On failure says why on stderr and
// returns the exit status (2: bad flags, 1: the store failed). `options`
// gets the fault injector of --test-faults.
std::optional<int> OpenBackend(const Flags& flags, const Clock* clock,
                               api::ApiOptions& options, Backend& backend);

}  // namespace presence::app

#endif  // PRESENCE_APP_BACKEND_H_

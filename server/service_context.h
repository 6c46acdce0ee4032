// What the gRPC service and the HTTP gateway share: the model, the scheduler, metrics, the serving state
// and the server-wide routing default. Owned by `adak serve` (cli/cmd_serve.cc) and outliving both
// front ends; every member is safe to use from their threads.
#ifndef ADAK_SERVER_SERVICE_CONTEXT_H_
#define ADAK_SERVER_SERVICE_CONTEXT_H_

#include <string>

#include "engine/model.h"
#include "engine/routing.h"
#include "engine/routing_weights.h"
#include "scheduler/scheduler.h"
#include "server/serving_state.h"

namespace adak::server {

class ApiKeys;
class Metrics;

struct ServiceContext {
  const engine::Model* model = nullptr;
  const engine::RoutingWeights* routing_weights = nullptr;  // never null once a front end uses the context
  std::string model_name;                 // as /v1/models and GetModelInfo report it (the model dir's name)
  engine::RoutingParams default_routing;  // for requests that name no policy
  scheduler::Scheduler* scheduler = nullptr;
  Metrics* metrics = nullptr;  // may be null in tests
  ServingState* state = nullptr;
  const ApiKeys* api_keys = nullptr;  // null or empty: no authentication (server/auth.h)
};

}  // namespace adak::server

#endif  // ADAK_SERVER_SERVICE_CONTEXT_H_

#include "core/gate_batcher.h"

#include <algorithm>
#include <atomic>
#include <string>
#include <utility>

namespace presence {

GateBatcher::GateBatcher(SendBatch send, std::size_t max_batch)
    : send_(std::move(send)), max_batch_(std::max<std::size_t>(1, max_batch)) {}

GateBatcher::Lane& GateBatcher::LaneOf(RealmId realm) {
  MutexLock lock(mu_);
  auto& lane = lanes_[realm];
  if (!lane) lane = std::make_unique<Lane>();
  return *lane;
}

void GateBatcher::Submit(RealmId realm, store::GateRequest request,
                         store::GateCallback done) {
  Lane& lane = LaneOf(realm);
  {
    MutexLock lock(lane.mu);
    if (lane.in_flight) {
      lane.waiting.push_back({std::move(request), std::move(done)});
      return;
    }
    lane.in_flight = true;
  }
  auto batch = std::make_shared<Batch>();
  batch->requests.push_back(std::move(request));
  batch->dones.push_back(std::move(done));
  Send(realm, lane, std::move(batch));
}

std::shared_ptr<GateBatcher::Batch> GateBatcher::TakeNext(Lane& lane) {
  MutexLock lock(lane.mu);
  if (lane.waiting.empty()) {
    lane.in_flight = false;
    return nullptr;
  }
  auto batch = std::make_shared<Batch>();
  const std::size_t n = std::min(max_batch_, lane.waiting.size());
  batch->requests.reserve(n);
  batch->dones.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    Pending& p = lane.waiting.front();
    batch->requests.push_back(std::move(p.request));
    batch->dones.push_back(std::move(p.done));
    lane.waiting.pop_front();
  }
  return batch;
}

void GateBatcher::Answer(Batch& batch, store::GateBatchResult result) {
  if (result && result->size() != batch.requests.size()) {
    result = Error(Errc::kCorrupt,
                   "gate batch: " + std::to_string(result->size()) +
                       " answers for " + std::to_string(batch.requests.size()) +
                       " requests");
  }
  for (std::size_t i = 0; i < batch.dones.size(); ++i) {
    if (!result) {
      batch.dones[i](result.error());
    } else {
      batch.dones[i](std::move((*result)[i]));
    }
  }
}

void GateBatcher::Send(RealmId realm, Lane& lane,
                       std::shared_ptr<Batch> batch) {
  // Who sends the batch that waited behind this one: the answer's callback,
  // if the store answered after send_ returned; else (answered inline) this
  // loop, so that a store answering at once does not recurse per batch.
  enum : int { kSending, kReturned, kHandedBack };
  struct Turn {
    std::atomic<int> state{kSending};
    std::shared_ptr<Batch> next;
  };
  while (batch) {
    auto turn = std::make_shared<Turn>();
    const std::span<const store::GateRequest> requests(batch->requests);
    send_(realm, requests,
          [this, realm, &lane, batch, turn](store::GateBatchResult result) {
            // The next call goes out before this one's answers are handed
            // on: the store works on it meanwhile.
            if (std::shared_ptr<Batch> next = TakeNext(lane)) {
              turn->next = next;
              int sending = kSending;
              if (!turn->state.compare_exchange_strong(sending, kHandedBack)) {
                Send(realm, lane, std::move(next));
              }
            }
            Answer(*batch, std::move(result));
          });
    int sending = kSending;
    if (turn->state.compare_exchange_strong(sending, kReturned)) return;
    batch = std::move(turn->next);
  }
}

}  // namespace presence

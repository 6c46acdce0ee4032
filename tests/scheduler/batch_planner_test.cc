// The batch planner with plain structs: decodes first, then prefill chunks, then FCFS admissions, under
// the token, running-request, KV-block and expert budgets; preemption of the newest when blocks run out.
#include "scheduler/batch_planner.h"

#include <vector>

#include "tests/test_util.h"

namespace adak::scheduler {
namespace {

using ::testing::ElementsAre;

PlanSequence Decode(uint64_t id, int64_t computed, double per_token = 4.0) {
  // Holds exactly the blocks for `computed` positions (block size 4).
  return {id, computed, 1, (computed + 3) / 4, per_token};
}
PlanSequence Prefill(uint64_t id, int64_t computed, int64_t pending, double per_token = 4.0) {
  return {id, computed, pending, (computed + 3) / 4, per_token};
}

PlannerLimits Limits(int64_t tokens = 64, int64_t running = 8, int64_t chunk = 16, double experts = 0.0) {
  PlannerLimits l;
  l.max_batch_tokens = tokens;
  l.max_running_requests = running;
  l.prefill_chunk = chunk;
  l.max_expert_activations = experts;
  l.block_size = 4;
  return l;
}

struct Chunk {
  bool from_waiting;
  size_t index;
  int64_t tokens;
};
std::vector<Chunk> Chunks(const Plan& plan) {
  std::vector<Chunk> out;
  for (const PlannedChunk& c : plan.chunks) out.push_back({c.from_waiting, c.index, c.tokens});
  return out;
}
MATCHER_P3(IsChunk, from_waiting, index, tokens, "") {
  return arg.from_waiting == from_waiting && arg.index == static_cast<size_t>(index) && arg.tokens == tokens;
}

TEST(BatchPlanner, DecodesFirstThenPrefillChunksThenAdmissions) {
  const std::vector<PlanSequence> running = {Prefill(1, 16, 40), Decode(2, 7), Decode(3, 9)};
  const std::vector<PlanSequence> waiting = {Prefill(4, 0, 10), Prefill(5, 0, 30)};
  const Plan plan = PlanStep({running, waiting, 100}, Limits(/*tokens=*/40));
  // Decodes of 2 and 3, a 16-token chunk of 1, then 10 tokens of 4 and the 12 tokens left for 5.
  EXPECT_THAT(Chunks(plan), ElementsAre(IsChunk(false, 1, 1), IsChunk(false, 2, 1), IsChunk(false, 0, 16),
                                        IsChunk(true, 0, 10), IsChunk(true, 1, 12)));
  EXPECT_EQ(plan.tokens, 40);
  EXPECT_TRUE(plan.preempted.empty());
}

TEST(BatchPlanner, NewBlocksAreCounted) {
  // 7 computed in 2 blocks: the 8th position still fits; 8 computed: the 9th needs a block.
  const std::vector<PlanSequence> running = {Decode(1, 7), Decode(2, 8)};
  const Plan plan = PlanStep({running, {}, 5}, Limits());
  ASSERT_EQ(plan.chunks.size(), 2u);
  EXPECT_EQ(plan.chunks[0].new_blocks, 0);
  EXPECT_EQ(plan.chunks[1].new_blocks, 1);
  EXPECT_EQ(plan.blocks_after, 4);
}

TEST(BatchPlanner, OutOfBlocksPreemptsTheNewest) {
  // No free block; 1 and 2 need one each. Preempting 3 (the newest, 3 blocks) covers both.
  const std::vector<PlanSequence> running = {Decode(1, 8), Decode(2, 8), Decode(3, 12)};
  const Plan plan = PlanStep({running, {}, 0}, Limits());
  EXPECT_THAT(plan.preempted, ElementsAre(2u));
  EXPECT_THAT(Chunks(plan), ElementsAre(IsChunk(false, 0, 1), IsChunk(false, 1, 1)));
  EXPECT_EQ(plan.blocks_after, 1);
}

TEST(BatchPlanner, TheNewestPreemptsItself) {
  // 2 needs a block, nothing is free and it is the newest: it gives its own blocks back, 1 goes on.
  const std::vector<PlanSequence> running = {Decode(1, 6), Decode(2, 8)};
  const Plan plan = PlanStep({running, {}, 0}, Limits());
  EXPECT_THAT(plan.preempted, ElementsAre(1u));
  EXPECT_THAT(Chunks(plan), ElementsAre(IsChunk(false, 0, 1)));
}

TEST(BatchPlanner, PreemptsSeveralNewestFirst) {
  const std::vector<PlanSequence> running = {Decode(1, 8), Prefill(2, 4, 10), Decode(3, 4)};
  // 1 needs a block: 3 holds 1 block -> preempted; enough.
  Plan plan = PlanStep({running, {}, 0}, Limits());
  EXPECT_THAT(plan.preempted, ElementsAre(2u));
  // 2's prefill takes nothing: no block left and prefills do not preempt.
  EXPECT_THAT(Chunks(plan), ElementsAre(IsChunk(false, 0, 1)));
}

TEST(BatchPlanner, PrefillChunkShrinksToTheFreeBlocks) {
  const std::vector<PlanSequence> running = {Prefill(1, 2, 30)};  // 1 block, 2 positions used
  const Plan plan = PlanStep({running, {}, 2}, Limits());
  // Capacity: 3 blocks x 4 - 2 = 10 tokens.
  EXPECT_THAT(Chunks(plan), ElementsAre(IsChunk(false, 0, 10)));
  EXPECT_EQ(plan.blocks_after, 0);
}

TEST(BatchPlanner, AdmissionStopsAtTheFirstThatDoesNotFit) {
  const std::vector<PlanSequence> waiting = {Prefill(1, 0, 4), Prefill(2, 0, 100), Prefill(3, 0, 2)};
  // 5 blocks: 1 takes one, 2's first chunk (16 tokens) needs 4.
  Plan plan = PlanStep({{}, waiting, 5}, Limits());
  EXPECT_THAT(Chunks(plan), ElementsAre(IsChunk(true, 0, 4), IsChunk(true, 1, 16)));
  // 4 blocks: 2's first chunk does not fit, and 3 does not overtake it.
  plan = PlanStep({{}, waiting, 4}, Limits());
  EXPECT_THAT(Chunks(plan), ElementsAre(IsChunk(true, 0, 4)));
}

TEST(BatchPlanner, PrefillsPreemptOnlyToMakeProgress) {
  // Two prefills hold every block and there are no decodes: the oldest takes the newest's blocks.
  const std::vector<PlanSequence> running = {Prefill(1, 8, 20), Prefill(2, 8, 20)};
  Plan plan = PlanStep({running, {}, 0}, Limits());
  EXPECT_THAT(plan.preempted, ElementsAre(1u));
  EXPECT_THAT(Chunks(plan), ElementsAre(IsChunk(false, 0, 8)));
  // With a decode planned, nobody is preempted for a prefill.
  const std::vector<PlanSequence> with_decode = {Decode(1, 7), Prefill(2, 8, 20)};
  plan = PlanStep({with_decode, {}, 0}, Limits());
  EXPECT_TRUE(plan.preempted.empty());
  EXPECT_THAT(Chunks(plan), ElementsAre(IsChunk(false, 0, 1)));
}

TEST(BatchPlanner, MaxRunningRequestsLimitsAdmissions) {
  const std::vector<PlanSequence> running = {Decode(1, 4), Decode(2, 4)};
  const std::vector<PlanSequence> waiting = {Prefill(3, 0, 4), Prefill(4, 0, 4)};
  const Plan plan = PlanStep({running, waiting, 100}, Limits(64, /*running=*/3));
  EXPECT_THAT(Chunks(plan), ElementsAre(IsChunk(false, 0, 1), IsChunk(false, 1, 1), IsChunk(true, 0, 4)));
}

TEST(BatchPlanner, ExpertBudgetPacksCheaperTokens) {
  const std::vector<PlanSequence> native = {Prefill(1, 0, 100, /*per_token=*/4.0)};
  const std::vector<PlanSequence> adaptive = {Prefill(1, 0, 100, /*per_token=*/1.6)};
  const PlannerLimits limits = Limits(/*tokens=*/100, 8, /*chunk=*/100, /*experts=*/64.0);
  EXPECT_EQ(PlanStep({{}, native, 100}, limits).tokens, 16);
  EXPECT_EQ(PlanStep({{}, adaptive, 100}, limits).tokens, 40);
  EXPECT_LE(PlanStep({{}, adaptive, 100}, limits).expert_activations, 64.0);
}

TEST(BatchPlanner, AtLeastOneTokenEvenOverTheExpertBudget) {
  const std::vector<PlanSequence> running = {Decode(1, 4, /*per_token=*/100.0), Decode(2, 4, 100.0)};
  const Plan plan = PlanStep({running, {}, 10}, Limits(64, 8, 16, /*experts=*/10.0));
  EXPECT_THAT(Chunks(plan), ElementsAre(IsChunk(false, 0, 1)));
}

TEST(BatchPlanner, TokenBudgetLimitsDecodes) {
  const std::vector<PlanSequence> running = {Decode(1, 4), Decode(2, 4), Decode(3, 4)};
  const Plan plan = PlanStep({running, {}, 10}, Limits(/*tokens=*/2));
  EXPECT_THAT(Chunks(plan), ElementsAre(IsChunk(false, 0, 1), IsChunk(false, 1, 1)));
}

TEST(BatchPlanner, NothingToDo) {
  const Plan plan = PlanStep({{}, {}, 10}, Limits());
  EXPECT_TRUE(plan.chunks.empty());
  EXPECT_EQ(plan.tokens, 0);
}

}  // namespace
}  // namespace adak::scheduler

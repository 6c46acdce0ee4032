// Stop strings across token boundaries (held-back text), stop tokens and eos.
#include "scheduler/stop_checker.h"

#include <string>
#include <vector>

#include "tests/test_util.h"

namespace adak::scheduler {
namespace {

// Feeds `pieces`; returns the released text and the matched stop string ("" when none).
std::pair<std::string, std::string> FeedAll(StopChecker& checker, const std::vector<std::string>& pieces) {
  std::string out;
  for (const std::string& piece : pieces) {
    StopResult r = checker.Feed(piece);
    out += r.text;
    if (r.stopped) return {out, r.matched_stop};
  }
  return {out + checker.Flush(), ""};
}

TEST(StopChecker, NoStopStringsReleasesEverything) {
  StopChecker checker({}, {}, {}, false);
  StopResult r = checker.Feed("hello");
  EXPECT_EQ(r.text, "hello");
  EXPECT_FALSE(r.stopped);
}

TEST(StopChecker, MatchSplitOverTokens) {
  StopChecker checker({"END"}, {}, {}, false);
  StopResult r = checker.Feed("the E");
  EXPECT_EQ(r.text, "the ");  // "E" could start "END": held back
  r = checker.Feed("N");
  EXPECT_EQ(r.text, "");
  r = checker.Feed("D and more");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.text, "");
  EXPECT_EQ(r.matched_stop, "END");
}

TEST(StopChecker, FalseStartIsReleased) {
  StopChecker checker({"END"}, {}, {}, false);
  EXPECT_EQ(checker.Feed("EN").text, "");
  StopResult r = checker.Feed("X");
  EXPECT_EQ(r.text, "ENX");
  EXPECT_FALSE(r.stopped);
}

TEST(StopChecker, OverlappingPrefixes) {
  // "aab" inside "aaab": the held "aa" must not hide the match that starts one byte later.
  StopChecker checker({"aab"}, {}, {}, false);
  EXPECT_EQ(FeedAll(checker, {"a", "a", "a", "b", "c"}), std::make_pair(std::string("a"), std::string("aab")));
}

TEST(StopChecker, EarliestMatchWinsThenLongest) {
  StopChecker checker({"cd", "bcd", "b"}, {}, {}, false);
  EXPECT_EQ(FeedAll(checker, {"abcde"}), std::make_pair(std::string("a"), std::string("bcd")));
  StopChecker later({"de", "bc"}, {}, {}, false);
  EXPECT_EQ(FeedAll(later, {"ab", "cde"}), std::make_pair(std::string("a"), std::string("bc")));
}

TEST(StopChecker, FlushReleasesHeldText) {
  StopChecker checker({"world!"}, {}, {}, false);
  EXPECT_EQ(checker.Feed("hello wor").text, "hello ");
  EXPECT_EQ(checker.Flush(), "wor");
}

TEST(StopChecker, MultiByteStopString) {
  StopChecker checker({"é!"}, {}, {}, false);
  EXPECT_EQ(FeedAll(checker, {"caf", "é", "!", "x"}), std::make_pair(std::string("caf"), std::string("é!")));
  StopChecker no_match({"é!"}, {}, {}, false);
  EXPECT_EQ(FeedAll(no_match, {"café", " ok"}), std::make_pair(std::string("café ok"), std::string("")));
}

TEST(StopChecker, StopTokensAndEos) {
  const std::vector<int32_t> stop_ids = {7};
  const std::vector<int32_t> eos = {2};
  StopChecker checker({}, stop_ids, eos, /*ignore_eos=*/false);
  EXPECT_TRUE(checker.IsStopToken(7));
  EXPECT_TRUE(checker.IsStopToken(2));
  EXPECT_FALSE(checker.IsStopToken(3));
  StopChecker ignoring({}, stop_ids, eos, /*ignore_eos=*/true);
  EXPECT_TRUE(ignoring.IsStopToken(7));
  EXPECT_FALSE(ignoring.IsStopToken(2));
}

}  // namespace
}  // namespace adak::scheduler

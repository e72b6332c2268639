// The regional tier's circuit breaker, stepped with an injected clock.
#include <virex/regional/breaker.hpp>

#include <gtest/gtest.h>

using virex::regional::Breaker;
using namespace std::chrono_literals;

TEST(Breaker, OpensAfterConsecutiveFailuresOnly) {
  Breaker b({3, 1000ms});
  const Breaker::Clock::time_point t0{};
  b.failure(t0);
  b.failure(t0);
  b.success();  // resets the streak
  b.failure(t0);
  b.failure(t0);
  EXPECT_EQ(b.state(), Breaker::State::closed);
  EXPECT_TRUE(b.allow(t0));
  b.failure(t0);
  EXPECT_EQ(b.state(), Breaker::State::open);
  EXPECT_FALSE(b.allow(t0 + 999ms));
}

TEST(Breaker, HalfOpenLetsOneProbeThrough) {
  Breaker b({1, 100ms});
  const Breaker::Clock::time_point t0{};
  b.failure(t0);
  EXPECT_FALSE(b.allow(t0 + 50ms));
  EXPECT_TRUE(b.allow(t0 + 100ms));  // the probe
  EXPECT_EQ(b.state(), Breaker::State::half_open);
  EXPECT_FALSE(b.allow(t0 + 101ms));  // only one probe at a time
  b.failure(t0 + 110ms);              // the probe failed: open again, for a full period
  EXPECT_EQ(b.state(), Breaker::State::open);
  EXPECT_FALSE(b.allow(t0 + 200ms));
  EXPECT_TRUE(b.allow(t0 + 210ms));
  b.success();
  EXPECT_EQ(b.state(), Breaker::State::closed);
  EXPECT_TRUE(b.allow(t0 + 211ms));
  EXPECT_TRUE(b.allow(t0 + 211ms));
}

TEST(Breaker, HalfOpenProbeFailureReopensEvenWithHighThreshold) {
  Breaker b({5, 10ms});
  const Breaker::Clock::time_point t0{};
  for (int i = 0; i < 5; ++i) b.failure(t0);
  ASSERT_EQ(b.state(), Breaker::State::open);
  ASSERT_TRUE(b.allow(t0 + 10ms));
  b.failure(t0 + 11ms);  // one failed probe is enough
  EXPECT_EQ(b.state(), Breaker::State::open);
}

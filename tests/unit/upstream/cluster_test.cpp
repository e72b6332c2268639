// ClusterState: circuit-breaker slots, retry budget, passive outlier ejection (thresholds, growing interval,
// the max_ejected_percent cap, never the last endpoint). No sockets; time is passed in.
#include <virex/upstream/cluster.hpp>

#include <gtest/gtest.h>

namespace virex::upstream {
namespace {
using namespace std::chrono_literals;
using O = ClusterState::Outcome;

config::Upstream cluster(std::size_t n) {
  config::Upstream u;
  u.name = "web";
  for (std::size_t i = 0; i < n; ++i) u.endpoints.push_back({"10.0.0." + std::to_string(i + 1), 80, {}});
  return u;
}

std::unique_ptr<ClusterState> resolved(const config::Upstream& u) {
  auto s = std::make_unique<ClusterState>(u);
  for (std::size_t i = 0; i < s->size(); ++i) s->endpoint(i).set_address(s->endpoint(i).host);
  return s;
}

// Keeps states alive for the test's duration (ClusterState holds atomics: it neither copies nor moves).
ClusterState* held(std::unique_ptr<ClusterState> s) {
  static std::vector<std::unique_ptr<ClusterState>> keep;
  keep.push_back(std::move(s));
  return keep.back().get();
}

TEST(ClusterState, NamesBracketIpv6) {
  EXPECT_EQ(endpoint_name("::1", 8080), "[::1]:8080");
  EXPECT_EQ(endpoint_name("origin", 80), "origin:80");
}

TEST(ClusterState, UnresolvedEndpointIsUnavailable) {
  ClusterState s(cluster(1));
  EXPECT_FALSE(s.endpoint(0).available(Clock::now()));
  s.endpoint(0).set_address("10.0.0.1");
  EXPECT_TRUE(s.endpoint(0).available(Clock::now()));
  const auto v = s.endpoint(0).address_version.load();
  s.endpoint(0).set_address("10.0.0.1");  // unchanged: no new version
  EXPECT_EQ(s.endpoint(0).address_version.load(), v);
}

TEST(ClusterState, SlotsStopAtTheLimit) {
  ClusterState s(cluster(1));
  EXPECT_TRUE(s.try_acquire(s.requests, 2));
  EXPECT_TRUE(s.try_acquire(s.requests, 2));
  EXPECT_FALSE(s.try_acquire(s.requests, 2));
  s.requests.fetch_sub(1);
  EXPECT_TRUE(s.try_acquire(s.requests, 2));
}

TEST(ClusterState, RetryBudgetIsAShareOfActiveRequests) {
  ClusterState s(cluster(2));
  config::Retries r;  // 20 %, min 3
  s.requests = 100;
  for (int i = 0; i < 20; ++i) EXPECT_TRUE(s.try_retry(r)) << i;
  EXPECT_FALSE(s.try_retry(r));
  s.requests = 1;
  s.retries = 2;
  EXPECT_TRUE(s.try_retry(r));   // min_concurrent 3
  EXPECT_FALSE(s.try_retry(r));
}

TEST(ClusterState, ConsecutiveFailuresEjectForAGrowingInterval) {
  auto u = cluster(4);
  ClusterState& s = *held(resolved(u));
  config::Outlier o;  // 5 × 5xx, 3 failures, 10 s base, 50 %
  const auto t0 = Clock::now();
  EXPECT_FALSE(s.record(0, O::failure, o, t0));
  EXPECT_FALSE(s.record(0, O::failure, o, t0));
  EXPECT_TRUE(s.record(0, O::failure, o, t0));
  EXPECT_TRUE(s.endpoint(0).ejected(t0 + 9s));
  EXPECT_FALSE(s.endpoint(0).ejected(t0 + 11s));
  // Ejected again right after: twice as long.
  const auto t1 = t0 + 11s;
  for (int i = 0; i < 2; ++i) EXPECT_FALSE(s.record(0, O::failure, o, t1));
  EXPECT_TRUE(s.record(0, O::failure, o, t1));
  EXPECT_TRUE(s.endpoint(0).ejected(t1 + 19s));
  EXPECT_FALSE(s.endpoint(0).ejected(t1 + 21s));
}

TEST(ClusterState, SuccessResetsTheCount) {
  ClusterState& s = *held(resolved(cluster(3)));
  config::Outlier o;
  const auto t = Clock::now();
  for (int i = 0; i < 4; ++i) EXPECT_FALSE(s.record(1, O::status_5xx, o, t));
  EXPECT_FALSE(s.record(1, O::success, o, t));
  for (int i = 0; i < 4; ++i) EXPECT_FALSE(s.record(1, O::status_5xx, o, t));
  EXPECT_TRUE(s.record(1, O::status_5xx, o, t));
}

TEST(ClusterState, NeverEjectsBeyondThePercentNorTheLastEndpoint) {
  ClusterState& s = *held(resolved(cluster(4)));
  config::Outlier o;
  o.consecutive_failures = 1;
  const auto t = Clock::now();
  EXPECT_TRUE(s.record(0, O::failure, o, t));
  EXPECT_TRUE(s.record(1, O::failure, o, t));
  EXPECT_FALSE(s.record(2, O::failure, o, t));  // 3 of 4 would exceed 50 %
  ClusterState& two = *held(resolved(cluster(2)));
  o.max_ejected_percent = 100;
  EXPECT_TRUE(two.record(0, O::failure, o, t));
  EXPECT_FALSE(two.record(1, O::failure, o, t));  // the last available one stays
}

TEST(ClusterState, ZeroThresholdDisablesEjection) {
  ClusterState& s = *held(resolved(cluster(3)));
  config::Outlier o;
  o.consecutive_5xx = 0;
  const auto t = Clock::now();
  for (int i = 0; i < 50; ++i) EXPECT_FALSE(s.record(0, O::status_5xx, o, t));
}

TEST(ProxyErrc, StatusAndNames) {
  EXPECT_EQ(status_of(ProxyErrc::connection_refused), 502u);
  EXPECT_EQ(status_of(ProxyErrc::destination_unavailable), 503u);
  EXPECT_EQ(status_of(ProxyErrc::connection_limit_reached), 503u);
  EXPECT_EQ(status_of(ProxyErrc::http_response_timeout), 504u);
  EXPECT_EQ(to_string(ProxyErrc::http_protocol_error), "http_protocol_error");
}

}  // namespace
}  // namespace virex::upstream

// The balanced assignment as a min-cost flow in LEMON, for
// bench/lemon_bench.ts: source -> token (capacity k) -> expert (capacity 1
// per pair) -> sink (capacity C), N * k units, cost -score * 2^bits.
// Solved with lemon::CostScaling and lemon::NetworkSimplex; prints one
// JSON line per algorithm with the optimum (scaled to an integer, and as a
// score sum) and the median milliseconds of the solve, wall clock (ms) and
// CPU time of the process (cpuMs), excluding reading the file and building
// the graph (reported separately as buildMs).
//
//   g++ -O2 -o lemon_assign lemon_assign.cpp -llemon
//   ./lemon_assign INSTANCE.bin BITS REPEATS [cost-scaling] [network-simplex]
//
// INSTANCE.bin (little-endian): int32 tokens, experts, k, capacity, then
// tokens x experts float32 scores, row-major; -Infinity masks a pair.
// Every finite score times 2^BITS must be an integer (the bench quantises
// its instances), so that the integer optimum is the score optimum exactly.
#include <lemon/cost_scaling.h>
#include <lemon/network_simplex.h>
#include <lemon/static_graph.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <utility>
#include <vector>

using lemon::StaticDigraph;
typedef long long Value;

static double nowMs() {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// CPU time of this process: steadier than the wall clock on a shared machine.
static double cpuMs() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void fail(const char* what) {
  std::fprintf(stderr, "lemon_assign: %s\n", what);
  std::exit(2);
}

int main(int argc, char** argv) {
  if (argc < 4) fail("usage: lemon_assign INSTANCE.bin BITS REPEATS [algorithms]");
  FILE* f = std::fopen(argv[1], "rb");
  if (!f) fail("cannot open the instance file");
  int32_t header[4];
  if (std::fread(header, sizeof(int32_t), 4, f) != 4) fail("short header");
  const int N = header[0], E = header[1], k = header[2], C = header[3];
  if (N <= 0 || E <= 0 || k <= 0 || k > E || C <= 0) fail("bad header");
  std::vector<float> s((size_t)N * E);
  if (std::fread(s.data(), sizeof(float), s.size(), f) != s.size()) {
    fail("short scores");
  }
  std::fclose(f);
  const int bits = std::atoi(argv[2]);
  const int repeats = std::max(1, std::atoi(argv[3]));
  std::vector<std::string> algorithms;
  for (int a = 4; a < argc; a++) algorithms.push_back(argv[a]);
  if (algorithms.empty()) algorithms.push_back("cost-scaling");
  const double unit = std::ldexp(1.0, bits);

  // Nodes: 0 the source, 1..N the tokens, N+1..N+E the experts, N+E+1
  // the sink. Arcs sorted by source, as StaticDigraph::build wants.
  const double t0 = nowMs();
  const int source = 0, sink = N + E + 1;
  std::vector<std::pair<int, int> > arcs;
  std::vector<Value> cap, cost;
  arcs.reserve((size_t)N * E + N + E);
  for (int i = 0; i < N; i++) {
    arcs.push_back(std::make_pair(source, 1 + i));
    cap.push_back(k);
    cost.push_back(0);
  }
  for (int i = 0; i < N; i++) {
    for (int j = 0; j < E; j++) {
      const float v = s[(size_t)i * E + j];
      if (v == -INFINITY) continue;
      if (!std::isfinite(v)) fail("a score is NaN or +Infinity");
      const double scaled = (double)v * unit;
      if (scaled != std::floor(scaled)) fail("a score is not a multiple of 2^-BITS");
      arcs.push_back(std::make_pair(1 + i, 1 + N + j));
      cap.push_back(1);
      cost.push_back(-(Value)scaled);
    }
  }
  for (int j = 0; j < E; j++) {
    arcs.push_back(std::make_pair(1 + N + j, sink));
    cap.push_back(C);
    cost.push_back(0);
  }
  StaticDigraph g;
  g.build(N + E + 2, arcs.begin(), arcs.end());
  StaticDigraph::ArcMap<Value> capMap(g), costMap(g);
  for (size_t a = 0; a < arcs.size(); a++) {
    capMap.set(g.arc(a), cap[a]);
    costMap.set(g.arc(a), cost[a]);
  }
  StaticDigraph::NodeMap<Value> supply(g, 0);
  supply.set(g.node(source), (Value)N * k);
  supply.set(g.node(sink), -(Value)N * k);
  const double buildMs = nowMs() - t0;

  for (const std::string& name : algorithms) {
    std::vector<double> times, cpuTimes;
    Value total = 0;
    bool optimal = true;
    for (int r = 0; r < repeats; r++) {
      const double t1 = nowMs(), c1 = cpuMs();
      if (name == "cost-scaling") {
        lemon::CostScaling<StaticDigraph, Value, Value> cs(g);
        cs.upperMap(capMap).costMap(costMap).supplyMap(supply);
        optimal = cs.run() == cs.OPTIMAL;
        total = optimal ? cs.totalCost() : 0;
      } else if (name == "network-simplex") {
        lemon::NetworkSimplex<StaticDigraph, Value, Value> ns(g);
        ns.upperMap(capMap).costMap(costMap).supplyMap(supply);
        optimal = ns.run() == ns.OPTIMAL;
        total = optimal ? ns.totalCost() : 0;
      } else {
        fail("unknown algorithm (cost-scaling, network-simplex)");
      }
      times.push_back(nowMs() - t1);
      cpuTimes.push_back(cpuMs() - c1);
    }
    std::sort(times.begin(), times.end());
    std::sort(cpuTimes.begin(), cpuTimes.end());
    std::printf(
        "{\"algorithm\":\"%s\",\"optimal\":%s,\"scaled\":%lld,"
        "\"objective\":%.17g,\"ms\":%.3f,\"cpuMs\":%.3f,\"buildMs\":%.3f,"
        "\"repeats\":%d}\n",
        name.c_str(), optimal ? "true" : "false", (long long)-total,
        (double)-total / unit, times[times.size() / 2],
        cpuTimes[cpuTimes.size() / 2], buildMs, repeats);
    std::fflush(stdout);
  }
  return 0;
}

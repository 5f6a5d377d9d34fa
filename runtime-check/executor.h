// The reference executor: runs a Model's graph on the CPU with the kernels in
// op_registry.cpp. It is edgepack's oracle: calibration, validation and the device
// runtime all go through it.
//
// At construction it checks every node (including subgraphs) against the registry and
// reports all unsupported ops at once (InputError, exit 2), before anything runs. A run
// executes nodes in topological order, frees each intermediate value after its last use,
// and records the peak bytes of live intermediates (the arena peak). The graph is compiled
// once into a plan of steps over numbered value slots, so a run does no name lookups.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "ir/ir.h"
#include "runtime-check/kernels/parallel.h"

namespace ep::rt {

class QPackCache;  // kernels/qgemm.h
class IgemmCache;  // kernels/igemm.h

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

struct RunStats {
    uint64_t peak_arena_bytes = 0;  // peak bytes of live intermediate values
    uint64_t nodes_run = 0;
    // Nodes run on one thread although the run has more (node_cost.h: too little work).
    uint64_t serial_nodes = 0;
};

class Executor {
  public:
    Executor(Model model, ExecOptions options);

    // Graph inputs that are not initializers, i.e. what a caller must feed.
    [[nodiscard]] const std::vector<ValueInfo>& inputs() const { return feeds_; }
    [[nodiscard]] const std::vector<ValueInfo>& outputs() const { return model_.graph.outputs; }
    [[nodiscard]] const Model& model() const { return model_; }

    // Runs the graph; `fetch` names extra intermediate values to return besides the
    // graph outputs (for per-layer comparisons). Throws InputError on a missing or
    // mistyped input. With `shared_kv_buffer` (the decode loop's opt-in, ONNX Runtime
    // GenAI's past_present_share_buffer, decoder.h) a GroupQueryAttention whose past input
    // dies there and already has present's length writes present in place into it; pass
    // the inputs as rvalues so that no one else holds their bytes (else they are copied
    // first).
    [[nodiscard]] NamedTensors run(NamedTensors inputs, const std::vector<std::string>& fetch = {},
                                   bool shared_kv_buffer = false);
    [[nodiscard]] const RunStats& last_stats() const { return stats_; }
    // QDQ patterns fused into integer ops when the plan was compiled (0 with
    // ExecOptions::fuse_qdq off).
    [[nodiscard]] size_t fused_qdq_ops() const { return fused_ops_; }

    ~Executor();
    Executor(const Executor&) = delete;
    Executor& operator=(const Executor&) = delete;

    struct Plan;   // the compiled graph (executor.cpp)
    struct Frame;  // one run's values

  private:
    std::vector<Tensor> run_plan(const Plan& plan, Frame& frame, const std::vector<bool>* keep);

    Model model_;
    // The main graph with its QDQ patterns fused (qdq_fusion.h), when any was; the plan
    // runs it. A run that fetches a value the fusion removed runs the unfused plan,
    // compiled at that first use.
    std::unique_ptr<Graph> fused_graph_;
    std::unordered_set<std::string> fused_away_;
    std::unique_ptr<Plan> unfused_plan_;
    ExecOptions options_;
    ExecOptions serial_options_;  // options_ with one thread, for the nodes too small to split
    std::vector<ValueInfo> feeds_;
    std::unique_ptr<Plan> plan_;               // the main graph's; subgraph plans hang off it
    std::unique_ptr<QPackCache> qpacks_;       // int8_activations: packed int4 weights (qgemm.h)
    std::unique_ptr<IgemmCache> igemm_cache_;  // int8 weights of the QDQ kernels (igemm.h)
    RunStats stats_;
    bool shared_kv_buffer_ = false;  // the current run's (run())
    uint64_t live_bytes_ = 0;
    size_t fused_ops_ = 0;
};

// Graph inputs that are not initializers: what a run must feed.
[[nodiscard]] std::vector<ValueInfo> graph_feeds(const Graph& graph);

// An op of the model, here or in a subgraph, that the registry lacks.
struct UnsupportedOp {
    std::string domain;  // "" for the default ONNX domain
    std::string op_type;
    int64_t opset = 0;               // the model's import of `domain`; 0 when not imported
    std::vector<std::string> nodes;  // Node::label() of each node using it, in graph order
    [[nodiscard]] std::string qualified_name() const;  // "LSTM", "com.microsoft.Foo"
};
// Every unsupported op of the model, sorted by domain and op type (empty: it can run).
[[nodiscard]] std::vector<UnsupportedOp> unsupported_ops(const Model& model);

// Refuses a model with an unsupported op, all of them at once, naming each op, its first
// node and the opset: InputError "2 unsupported ops: LSTM (2 nodes), NonMaxSuppression
// (1 node); first node 'lstm_1' (LSTM, opset ai.onnx 17) and 1 more, node 'nms'
// (NonMaxSuppression, opset ai.onnx 17)". The Executor checks this first; compress checks
// it before writing anything; `inspect --json` lists the same (unsupported_ops above).
void check_supported_ops(const Model& model);

// Refuses (InputError naming the node) a node, here or in a subgraph, that names fewer
// outputs than its kernel produces (a TopK naming only Values), and an If whose branch
// declares other than as many outputs as the node names, and a Loop / Scan whose body
// declares other than the node's outputs (Loop: plus cond). The Executor checks this when it
// compiles the plan; compress checks it before writing anything.
void check_output_counts(const Graph& graph);

// Every (domain, op_type) the runtime implements, sorted, for docs and the conformance runner.
[[nodiscard]] std::vector<std::string> supported_ops();

}  // namespace ep::rt

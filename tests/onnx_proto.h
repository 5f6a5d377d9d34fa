// ONNX protobuf builders shared by the tests that write hand-made .onnx files
// (test_compress_plan.cpp, test_bad_input_exit2.cpp, test_onnx_hostile.cpp).
#pragma once

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "support.h"

namespace ep::test {

// An opset-17 model (IR 8, producer "edgepack-tests") whose graph `graph_name` is empty.
inline onnx::ModelProto empty_model(const std::string& graph_name) {
    onnx::ModelProto m;
    m.set_ir_version(8);
    m.set_producer_name("edgepack-tests");
    auto* op = m.add_opset_import();
    op->set_domain("");
    op->set_version(17);
    m.mutable_graph()->set_name(graph_name);
    return m;
}

// Appends a tensor value `name` of `dims` (f32 unless `elem_type` says otherwise) to a
// graph's inputs or outputs.
inline void add_value(google::protobuf::RepeatedPtrField<onnx::ValueInfoProto>* list,
                      const std::string& name, std::vector<int64_t> dims,
                      int elem_type = onnx::TensorProto::FLOAT) {
    auto* v = list->Add();
    v->set_name(name);
    auto* tt = v->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(elem_type);
    auto* shape = tt->mutable_shape();
    for (int64_t d : dims) shape->add_dim()->set_dim_value(d);
}

inline onnx::NodeProto* add_node(onnx::GraphProto& g, const std::string& op,
                                 const std::string& name, std::vector<std::string> inputs,
                                 std::vector<std::string> outputs) {
    auto* n = g.add_node();
    n->set_op_type(op);
    n->set_name(name);
    for (const auto& i : inputs) n->add_input(i);
    for (const auto& o : outputs) n->add_output(o);
    return n;
}

// An f32 tensor `name` of `dims` holding the values ((i * 7) % 11) / 10.
inline void fill_weight(onnx::TensorProto* w, const std::string& name, std::vector<int64_t> dims) {
    w->set_name(name);
    w->set_data_type(onnx::TensorProto::FLOAT);
    int64_t n = 1;
    for (int64_t d : dims) {
        w->add_dims(d);
        n *= d;
    }
    for (int64_t i = 0; i < n; ++i) w->add_float_data(static_cast<float>((i * 7) % 11) / 10.0f);
}

inline std::filesystem::path write_model(const TempDir& dir, const onnx::ModelProto& m,
                                         const std::string& name = "model.onnx") {
    std::filesystem::path path = dir / name;
    write_file(path, m.SerializeAsString());
    return path;
}

}  // namespace ep::test

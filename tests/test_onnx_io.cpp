// ONNX read/write: round trips that keep everything the IR carries, every TensorProto
// encoding read to the same little-endian bytes, external data as mapped views, the
// external-data writer (layout, determinism, in-place rewrite, failures leave no files),
// real models that must compute bit-identical outputs in ONNX Runtime after a round trip,
// and the > 2 GB acceptance run ([large]).
#include <fcntl.h>
#include <onnx/onnx_pb.h>
#include <unistd.h>

#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "formats/model_io.h"
#include "formats/onnx_io.h"
#include "ir/ir.h"
#include "support.h"

using namespace ep;
namespace fs = std::filesystem;

namespace {

Tensor make_tensor(std::string name, DType dtype, std::vector<int64_t> shape,
                   std::vector<uint8_t> bytes) {
    Tensor t;
    t.name = std::move(name);
    t.dtype = dtype;
    t.shape = std::move(shape);
    std::vector<std::byte> b(bytes.size());
    if (!bytes.empty()) std::memcpy(b.data(), bytes.data(), bytes.size());  // empty: null data
    t.data = TensorData::owned(std::move(b));
    return t;
}

std::vector<uint8_t> bytes_of(const Tensor& t) {
    auto b = t.data.bytes();
    std::vector<uint8_t> out(b.size());
    if (!b.empty()) std::memcpy(out.data(), b.data(), b.size());
    return out;
}

// Every field of the IR as text, so two models compare with one string equality and a
// difference shows where it is.
void dump(std::ostream& o, const Tensor& t, const std::string& in) {
    o << in << "tensor " << t.name << " " << dtype_name(t.dtype) << shape_string(t.shape)
      << " doc=" << t.doc_string << " bytes=";
    auto bytes = bytes_of(t);
    if (bytes.size() <= 64) {
        for (auto b : bytes) o << std::hex << int(b) << std::dec << ".";
    } else {  // FNV-1a: enough to tell large tensors apart
        uint64_t h = 1469598103934665603ull;
        for (auto b : bytes) h = (h ^ b) * 1099511628211ull;
        o << bytes.size() << "#" << std::hex << h << std::dec;
    }
    for (const auto& s : t.strings) o << " str=" << s;
    o << "\n";
}

void dump(std::ostream& o, const Graph& g, const std::string& in);

void dump(std::ostream& o, const ValueInfo& v, const std::string& in) {
    o << in << "value " << v.name << " doc=" << v.doc_string;
    if (v.type) {
        const auto& t = *v.type;
        o << " tensor=" << t.is_tensor << " elem=" << dtype_name(t.elem) << " den=" << t.denotation
          << " opaque=" << t.opaque.size() << ":" << t.opaque;
        if (t.shape) {
            o << " shape=";
            for (const auto& d : *t.shape)
                o << "(" << (d.value ? std::to_string(*d.value) : "?") << "," << d.param << ","
                  << d.denotation << ")";
        } else {
            o << " rank=?";
        }
    }
    o << "\n";
}

void dump(std::ostream& o, const Attribute& a, const std::string& in) {
    o << in << "attr " << a.name << " type=" << int(a.type) << " f=" << a.f << " i=" << a.i
      << " s=" << a.s << " ref=" << a.ref_attr_name << " doc=" << a.doc_string << " floats=";
    for (float f : a.floats) o << f << ",";
    o << " ints=";
    for (auto i : a.ints) o << i << ",";
    o << " strings=";
    for (const auto& s : a.strings) o << s << ",";
    o << " opaque=";
    for (const auto& s : a.opaque) o << s.size() << ":" << s << ",";
    o << "\n";
    for (const auto& t : a.tensors) dump(o, t, in + "  ");
    for (const auto& g : a.graphs) dump(o, g, in + "  ");
}

void dump(std::ostream& o, const Node& n, const std::string& in) {
    o << in << "node " << n.name << " " << n.domain << ":" << n.op_type << " doc=" << n.doc_string
      << " in=";
    for (const auto& s : n.inputs) o << "[" << s << "]";
    o << " out=";
    for (const auto& s : n.outputs) o << "[" << s << "]";
    o << "\n";
    for (const auto& a : n.attributes) dump(o, a, in + "  ");
}

void dump(std::ostream& o, const Graph& g, const std::string& in) {
    o << in << "graph " << g.name << " doc=" << g.doc_string << "\n";
    for (const auto& v : g.inputs) dump(o, v, in + " in ");
    for (const auto& v : g.outputs) dump(o, v, in + " out ");
    for (const auto& v : g.value_info) dump(o, v, in + " vi ");
    for (const auto& t : g.initializers) dump(o, t, in + " ");
    for (const auto& n : g.nodes) dump(o, n, in + " ");
    for (const auto& s : g.opaque_sparse_initializers) o << in << " sparse " << s << "\n";
    for (const auto& s : g.opaque_quantization_annotation) o << in << " qa " << s << "\n";
}

std::string dump(const Model& m) {
    std::ostringstream o;
    o << "ir=" << m.ir_version << " producer=" << m.producer_name << "/" << m.producer_version
      << " domain=" << m.domain << " version=" << m.model_version << " doc=" << m.doc_string
      << "\n";
    for (const auto& op : m.opset_imports) o << "opset " << op.domain << ":" << op.version << "\n";
    for (const auto& [k, v] : m.metadata) o << "meta " << k << "=" << v << "\n";
    dump(o, m.graph, "");
    for (const auto& f : m.functions) {
        o << "function " << f.domain << ":" << f.name << " doc=" << f.doc_string << " in=";
        for (const auto& s : f.inputs) o << s << ",";
        o << " out=";
        for (const auto& s : f.outputs) o << s << ",";
        o << " attrs=";
        for (const auto& s : f.attribute_names) o << s << ",";
        o << "\n";
        for (const auto& op : f.opset_imports) o << " opset " << op.domain << ":" << op.version;
        o << "\n";
        for (const auto& a : f.attribute_defaults) dump(o, a, " default ");
        for (const auto& n : f.nodes) dump(o, n, " ");
    }
    for (const auto& t : m.opaque_training_info) o << "training " << t << "\n";
    return o.str();
}

OnnxWriteOptions opts(ExternalData external, uint64_t threshold = 1024, std::string file = "") {
    OnnxWriteOptions o;
    o.external = external;
    o.external_threshold = threshold;
    o.external_file = std::move(file);
    return o;
}

Attribute attr(std::string name, AttrType type) {
    Attribute a;
    a.name = std::move(name);
    a.type = type;
    return a;
}

ValueInfo tensor_value(std::string name, DType elem, std::vector<Dim> dims) {
    ValueInfo v;
    v.name = std::move(name);
    ValueType t;
    t.elem = elem;
    t.shape = std::move(dims);
    v.type = t;
    return v;
}

Graph branch(const std::string& name, float value) {
    Graph g;
    g.name = name;
    g.doc_string = name + " doc";
    g.initializers.push_back(make_f32_tensor(name + "_c", {1}, std::vector<float>{value}));
    Node constant;
    constant.op_type = "Constant";
    constant.name = name + "_const";
    constant.outputs = {name + "_k"};
    Attribute v = attr("value", AttrType::Tensor);
    v.tensors.push_back(make_f32_tensor("", {2}, std::vector<float>{value, -value}));
    constant.attributes.push_back(v);
    Node add;
    add.op_type = "Add";
    add.inputs = {name + "_k", name + "_c"};
    add.outputs = {name + "_out"};
    g.nodes = {constant, add};
    g.outputs.push_back(tensor_value(name + "_out", DType::F32, {Dim{2, "", ""}}));
    return g;
}

// A small model that uses every part of the IR the ONNX format can carry.
Model rich_model() {
    Model m;
    m.ir_version = 9;
    m.opset_imports = {{"", 17}, {"com.example", 1}};
    m.producer_name = "edgepack-test";
    m.producer_version = "0.1";
    m.domain = "com.example.models";
    m.model_version = 42;
    m.doc_string = "a model with one of everything";
    m.metadata = {{"zeta", "first in file"}, {"alpha", "second"}, {"zeta2", ""}};

    Graph& g = m.graph;
    g.name = "main";
    g.doc_string = "main graph";
    ValueInfo x = tensor_value("x", DType::F32,
                               {Dim{1, "", ""}, Dim{std::nullopt, "batch", "DATA_BATCH"}, Dim{}});
    x.type->denotation = "TENSOR";
    x.doc_string = "input doc";
    g.inputs = {x, tensor_value("cond", DType::Bool, {})};
    ValueInfo untyped;
    untyped.name = "y";
    ValueInfo rank_unknown;
    rank_unknown.name = "z";
    rank_unknown.type = ValueType{};
    rank_unknown.type->elem = DType::F16;
    g.outputs = {untyped, rank_unknown};
    onnx::TypeProto seq;
    seq.mutable_sequence_type()->mutable_elem_type()->mutable_tensor_type()->set_elem_type(1);
    ValueInfo seq_value;
    seq_value.name = "s";
    seq_value.type = ValueType{};
    seq_value.type->is_tensor = false;
    seq_value.type->opaque = seq.SerializeAsString();
    g.value_info = {seq_value};

    Tensor w = make_f32_tensor("w", {2, 3}, std::vector<float>{1, 2, 3, 4, 5, -6.5f});
    w.doc_string = "weights";
    g.initializers.push_back(w);
    g.initializers.push_back(make_tensor("i64", DType::I64, {1}, {1, 2, 3, 4, 5, 6, 7, 0x80}));
    g.initializers.push_back(make_tensor("half", DType::F16, {2}, {0x00, 0x3C, 0x00, 0xC0}));
    g.initializers.push_back(make_tensor("flags", DType::Bool, {3}, {1, 0, 1}));
    g.initializers.push_back(make_tensor("nibbles", DType::I4, {3}, {0x21, 0x0F}));
    g.initializers.push_back(make_tensor("f8", DType::F8E5M2, {2}, {0x3C, 0xBC}));
    g.initializers.push_back(make_tensor("empty", DType::F32, {0, 4}, {}));
    g.initializers.push_back(make_tensor("scalar", DType::U8, {}, {7}));
    Tensor names;
    names.name = "names";
    names.dtype = DType::String;
    names.shape = {2};
    names.strings = {"hello", std::string("nul\0byte", 8)};
    g.initializers.push_back(names);

    Node all;
    all.name = "all_attrs";
    all.op_type = "Custom";
    all.domain = "com.example";
    all.doc_string = "one attribute of each type";
    all.inputs = {"x", "", "w"};
    all.outputs = {"y"};
    Attribute f = attr("f", AttrType::Float);
    f.f = 0.25f;
    f.doc_string = "a float";
    Attribute zero_f = attr("zero_f", AttrType::Float);  // a default value still round-trips
    Attribute i = attr("i", AttrType::Int);
    i.i = -7;
    Attribute s = attr("s", AttrType::String);
    s.s = std::string("bytes\0\xff", 7);
    Attribute t = attr("t", AttrType::Tensor);
    t.tensors.push_back(make_f32_tensor("t_value", {2}, std::vector<float>{0.5f, 1.5f}));
    Attribute gr = attr("g", AttrType::Graph);
    gr.graphs.push_back(branch("sub", 3.0f));
    onnx::SparseTensorProto sparse;
    sparse.add_dims(4);
    auto* sv = sparse.mutable_values();
    sv->set_data_type(1);
    sv->add_dims(1);
    sv->add_float_data(9.0f);
    auto* si = sparse.mutable_indices();
    si->set_data_type(7);
    si->add_dims(1);
    si->add_int64_data(2);
    Attribute sp = attr("sp", AttrType::SparseTensor);
    sp.opaque.push_back(sparse.SerializeAsString());
    onnx::TypeProto tensor_type;
    tensor_type.mutable_tensor_type()->set_elem_type(10);
    Attribute tp = attr("tp", AttrType::TypeProto);
    tp.opaque.push_back(tensor_type.SerializeAsString());
    Attribute floats = attr("floats", AttrType::Floats);
    floats.floats = {1.0f, -0.0f, 3e-9f};
    Attribute ints = attr("ints", AttrType::Ints);
    ints.ints = {0, -1, int64_t{1} << 62};
    Attribute strings = attr("strings", AttrType::Strings);
    strings.strings = {"a", "", "c"};
    Attribute tensors = attr("tensors", AttrType::Tensors);
    tensors.tensors = {make_f32_tensor("ta", {1}, std::vector<float>{1.0f}),
                       make_tensor("tb", DType::I8, {2}, {0xFF, 0x01})};
    Attribute graphs = attr("graphs", AttrType::Graphs);
    graphs.graphs = {branch("g1", 1.0f), branch("g2", 2.0f)};
    Attribute sps = attr("sps", AttrType::SparseTensors);
    sps.opaque = {sparse.SerializeAsString(), sparse.SerializeAsString()};
    Attribute tps = attr("tps", AttrType::TypeProtos);
    tps.opaque = {tensor_type.SerializeAsString(), seq.SerializeAsString()};
    Attribute empty_ints = attr("empty_ints", AttrType::Ints);
    all.attributes = {f,      zero_f, i,       s,       t,      gr,  sp,  tp,
                      floats, ints,   strings, tensors, graphs, sps, tps, empty_ints};
    g.nodes.push_back(all);

    Node if_node;
    if_node.name = "choose";
    if_node.op_type = "If";
    if_node.inputs = {"cond"};
    if_node.outputs = {"chosen"};
    Attribute then_branch = attr("then_branch", AttrType::Graph);
    then_branch.graphs.push_back(branch("then", 1.0f));
    Attribute else_branch = attr("else_branch", AttrType::Graph);
    else_branch.graphs.push_back(branch("else", -1.0f));
    if_node.attributes = {then_branch, else_branch};
    g.nodes.push_back(if_node);

    Node call;
    call.op_type = "ScaleBy";
    call.domain = "com.example";
    call.inputs = {"chosen"};
    call.outputs = {"z"};
    Attribute alpha = attr("alpha", AttrType::Float);
    alpha.f = 2.0f;
    call.attributes = {alpha};
    g.nodes.push_back(call);

    Function fn;
    fn.name = "ScaleBy";
    fn.domain = "com.example";
    fn.doc_string = "b = a * alpha";
    fn.inputs = {"a"};
    fn.outputs = {"b"};
    fn.attribute_names = {"alpha"};
    Attribute beta = attr("beta", AttrType::Float);
    beta.f = 0.5f;
    fn.attribute_defaults = {beta};
    Node c;
    c.op_type = "Constant";
    c.outputs = {"alpha_value"};
    Attribute ref = attr("value_float", AttrType::Float);
    ref.ref_attr_name = "alpha";
    c.attributes = {ref};
    Node mul;
    mul.op_type = "Mul";
    mul.inputs = {"a", "alpha_value"};
    mul.outputs = {"b"};
    fn.nodes = {c, mul};
    fn.opset_imports = {{"", 17}};
    m.functions.push_back(fn);

    g.opaque_sparse_initializers.push_back(sparse.SerializeAsString());
    onnx::TensorAnnotation annotation;
    annotation.set_tensor_name("w");
    auto* kv = annotation.add_quant_parameter_tensor_names();
    kv->set_key("SCALE_TENSOR");
    kv->set_value("w_scale");
    g.opaque_quantization_annotation.push_back(annotation.SerializeAsString());
    onnx::TrainingInfoProto training;
    training.mutable_algorithm()->set_name("train_step");
    auto* bind = training.add_update_binding();
    bind->set_key("w");
    bind->set_value("w_new");
    m.opaque_training_info.push_back(training.SerializeAsString());
    return m;
}

onnx::ModelProto parse_file(const fs::path& path) {
    onnx::ModelProto p;
    std::string bytes = test::read_file(path);
    REQUIRE(p.ParseFromString(bytes));
    return p;
}

std::map<std::string, std::string> external_entries(const onnx::TensorProto& t) {
    std::map<std::string, std::string> out;
    for (const auto& e : t.external_data()) out[e.key()] = e.value();
    return out;
}

// A model holding one float tensor per size, plus a Constant node with a large tensor.
Model sized_model(const std::vector<size_t>& floats_per_tensor) {
    Model m;
    m.opset_imports = {{"", 17}};
    for (size_t k = 0; k < floats_per_tensor.size(); ++k) {
        std::vector<float> v(floats_per_tensor[k]);
        for (size_t j = 0; j < v.size(); ++j) v[j] = static_cast<float>(k * 1000 + j) * 0.5f;
        m.graph.initializers.push_back(
            make_f32_tensor("t" + std::to_string(k), {static_cast<int64_t>(v.size())}, v));
    }
    Node constant;
    constant.op_type = "Constant";
    constant.name = "big_constant";
    constant.outputs = {"k"};
    Attribute value = attr("value", AttrType::Tensor);
    std::vector<float> v(700, 0.125f);
    value.tensors.push_back(make_f32_tensor("k", {700}, v));
    constant.attributes.push_back(value);
    m.graph.nodes.push_back(constant);
    m.graph.outputs.push_back(tensor_value("k", DType::F32, {Dim{700, "", ""}}));
    return m;
}

std::vector<std::string> files_in(const fs::path& dir) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename());
    std::sort(names.begin(), names.end());
    return names;
}

}  // namespace

TEST_CASE("ONNX round trip keeps every attribute type, subgraphs, functions and metadata",
          "[onnx]") {
    test::TempDir dir;
    Model original = rich_model();
    write_onnx(original, dir / "rich.onnx", opts(ExternalData::Never));
    Model back = read_onnx(dir / "rich.onnx");
    CHECK(dump(back) == dump(original));
    // Spot checks a reader of the dump would look for first.
    REQUIRE(back.graph.nodes.size() == 3);
    CHECK(back.graph.nodes[0].attributes.size() == 16);
    CHECK(back.graph.nodes[1]
              .attributes[0]
              .graphs[0]
              .nodes[0]
              .attributes[0]
              .tensors[0]
              .values<float>()[1] == -1.0f);
    REQUIRE(back.functions.size() == 1);
    CHECK(back.functions[0].attribute_defaults.size() == 1);
    CHECK(back.functions[0].nodes[0].attributes[0].ref_attr_name == "alpha");
    CHECK(back.metadata.front().first == "zeta");
    CHECK(back.graph.initializers[0].doc_string == "weights");

    // Writing again gives the same bytes: output depends only on the model.
    write_onnx(back, dir / "again.onnx", opts(ExternalData::Never));
    write_onnx(original, dir / "rich2.onnx", opts(ExternalData::Never));
    CHECK(test::read_file(dir / "again.onnx") == test::read_file(dir / "rich.onnx"));
    CHECK(test::read_file(dir / "rich2.onnx") == test::read_file(dir / "rich.onnx"));

    // The function's attribute default travels in FunctionProto field 11
    // (attribute_proto), which newer ONNX readers see as a real field.
    auto proto = parse_file(dir / "rich.onnx");
    const auto& unknown = proto.functions(0).unknown_fields();
    REQUIRE(unknown.field_count() == 1);
    CHECK(unknown.field(0).number() == 11);
}

TEST_CASE("ONNX round trip with every large tensor in external data keeps the model", "[onnx]") {
    test::TempDir dir;
    Model original = rich_model();
    write_onnx(original, dir / "rich.onnx", opts(ExternalData::Always, 4));
    CHECK(fs::exists(dir / "rich.onnx.data"));
    Model back = read_onnx(dir / "rich.onnx");
    CHECK(dump(back) == dump(original));
    CHECK(back.graph.initializers[0].data.is_view());
}

TEST_CASE("typed TensorProto fields read as the same little-endian bytes as raw_data", "[onnx]") {
    onnx::ModelProto mp;
    mp.set_ir_version(8);
    auto* g = mp.mutable_graph();
    g->set_name("typed");
    auto add = [&](const std::string& name, int code, std::vector<int64_t> dims) {
        auto* t = g->add_initializer();
        t->set_name(name);
        t->set_data_type(code);
        for (auto d : dims) t->add_dims(d);
        return t;
    };
    auto* f32 = add("f32", 1, {2});
    f32->add_float_data(1.5f);
    f32->add_float_data(-2.0f);
    auto* i8 = add("i8", 3, {3});
    for (int v : {-1, 127, -128}) i8->add_int32_data(v);
    auto* u8 = add("u8", 2, {2});
    for (int v : {255, 0}) u8->add_int32_data(v);
    add("i16", 5, {1})->add_int32_data(-2);
    add("u16", 4, {1})->add_int32_data(65535);
    auto* b = add("bool", 9, {3});
    for (int v : {0, 1, 5}) b->add_int32_data(v);
    add("f16", 10, {1})->add_int32_data(0x3C00);
    add("bf16", 16, {1})->add_int32_data(0x3F80);
    add("f8", 17, {1})->add_int32_data(0x38);
    auto* i4 = add("i4", 22, {3});  // three nibbles in two packed bytes
    i4->add_int32_data(0x21);
    i4->add_int32_data(0x0F);
    auto* u4 = add("u4", 21, {4});
    u4->add_int32_data(0xBA);
    u4->add_int32_data(0xDC);
    auto* i64 = add("i64", 7, {2});
    i64->add_int64_data(-5);
    i64->add_int64_data(int64_t{1} << 40);
    add("f64", 11, {1})->add_double_data(0.25);
    add("u32", 12, {1})->add_uint64_data(4000000000u);
    add("u64", 13, {1})->add_uint64_data(UINT64_MAX);
    auto* c64 = add("c64", 14, {1});
    c64->add_float_data(1.0f);
    c64->add_float_data(2.0f);
    auto* str = add("str", 8, {2});
    str->add_string_data("ab");
    str->add_string_data("");
    add("raw", 6, {2})->set_raw_data(std::string("\x01\x00\x00\x00\xff\xff\xff\xff", 8));

    std::string bytes = mp.SerializeAsString();
    test::TempDir dir;
    Model m = read_onnx_bytes(std::as_bytes(std::span(bytes.data(), bytes.size())), dir.path(),
                              "typed.onnx");
    auto get = [&](const char* name) {
        const Tensor* t = m.graph.find_initializer(name);
        REQUIRE(t != nullptr);
        return bytes_of(*t);
    };
    auto le = [](auto v) {
        std::vector<uint8_t> out(sizeof(v));
        std::memcpy(out.data(), &v, sizeof(v));
        return out;
    };
    std::vector<uint8_t> f32_bytes = le(1.5f), neg2 = le(-2.0f);
    f32_bytes.insert(f32_bytes.end(), neg2.begin(), neg2.end());
    CHECK(get("f32") == f32_bytes);
    CHECK(get("i8") == std::vector<uint8_t>{0xFF, 0x7F, 0x80});
    CHECK(get("u8") == std::vector<uint8_t>{0xFF, 0x00});
    CHECK(get("i16") == std::vector<uint8_t>{0xFE, 0xFF});
    CHECK(get("u16") == std::vector<uint8_t>{0xFF, 0xFF});
    CHECK(get("bool") == std::vector<uint8_t>{0, 1, 1});
    CHECK(get("f16") == std::vector<uint8_t>{0x00, 0x3C});
    CHECK(get("bf16") == std::vector<uint8_t>{0x80, 0x3F});
    CHECK(get("f8") == std::vector<uint8_t>{0x38});
    CHECK(get("i4") == std::vector<uint8_t>{0x21, 0x0F});
    CHECK(get("u4") == std::vector<uint8_t>{0xBA, 0xDC});
    std::vector<uint8_t> i64_bytes = le(int64_t{-5}), big = le(int64_t{1} << 40);
    i64_bytes.insert(i64_bytes.end(), big.begin(), big.end());
    CHECK(get("i64") == i64_bytes);
    CHECK(get("f64") == le(0.25));
    CHECK(get("u32") == le(uint32_t{4000000000u}));
    CHECK(get("u64") == le(UINT64_MAX));
    std::vector<uint8_t> c64_bytes = le(1.0f), two = le(2.0f);
    c64_bytes.insert(c64_bytes.end(), two.begin(), two.end());
    CHECK(get("c64") == c64_bytes);
    CHECK(m.graph.find_initializer("str")->strings == std::vector<std::string>{"ab", ""});
    CHECK(get("raw") == std::vector<uint8_t>{1, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF});
    CHECK(m.graph.find_initializer("i4")->dtype == DType::I4);
    CHECK(m.graph.find_initializer("f8")->dtype == DType::F8E4M3FN);

    // Written back, every numeric tensor is raw_data with exactly those bytes.
    write_onnx(m, dir / "typed.onnx");
    auto written = parse_file(dir / "typed.onnx");
    for (const auto& t : written.graph().initializer()) {
        INFO(t.name());
        const Tensor* orig = m.graph.find_initializer(t.name());
        REQUIRE(orig != nullptr);
        CHECK(t.data_type() == traits(orig->dtype).onnx_code);
        if (orig->dtype == DType::String) {
            CHECK(t.string_data_size() == 2);
            continue;
        }
        CHECK(t.float_data_size() + t.int32_data_size() + t.int64_data_size() +
                  t.double_data_size() + t.uint64_data_size() ==
              0);
        auto want = bytes_of(*orig);
        CHECK(std::vector<uint8_t>(t.raw_data().begin(), t.raw_data().end()) == want);
    }
}

TEST_CASE("external data tensors are views of one mapping, misaligned ranges are copied",
          "[onnx]") {
    test::TempDir dir;
    // weights.bin: a at 0 (4 floats), b at 64 (2 floats), c at 130 (misaligned for f32).
    std::string data(200, '\0');
    float a[4] = {1, 2, 3, 4}, b[2] = {-1, 0.5f}, c[2] = {7, 8};
    std::memcpy(data.data(), a, 16);
    std::memcpy(data.data() + 64, b, 8);
    std::memcpy(data.data() + 130, c, 8);
    test::write_file(dir / "weights.bin", data);

    onnx::ModelProto mp;
    mp.set_ir_version(8);
    auto* g = mp.mutable_graph();
    auto add = [&](const std::string& name, int64_t n, const std::string& offset,
                   const std::string& length) {
        auto* t = g->add_initializer();
        t->set_name(name);
        t->set_data_type(1);
        t->add_dims(n);
        t->set_data_location(onnx::TensorProto::EXTERNAL);
        auto entry = [&](const char* k, const std::string& v) {
            auto* e = t->add_external_data();
            e->set_key(k);
            e->set_value(v);
        };
        entry("location", "weights.bin");
        if (!offset.empty()) entry("offset", offset);
        if (!length.empty()) entry("length", length);
    };
    add("a", 4, "", "16");  // offset defaults to 0
    add("b", 2, "64", "");  // length defaults to dtype x shape
    add("c", 2, "130", "8");
    // A sparse initializer whose values are external: kept opaque, so its data is read in.
    auto* sparse = g->add_sparse_initializer();
    sparse->add_dims(10);
    sparse->mutable_values()->CopyFrom(g->initializer(1));
    sparse->mutable_values()->set_name("sparse_values");
    sparse->mutable_indices()->set_data_type(7);
    sparse->mutable_indices()->add_dims(2);
    sparse->mutable_indices()->add_int64_data(3);
    sparse->mutable_indices()->add_int64_data(7);
    test::write_file(dir / "m.onnx", mp.SerializeAsString());

    Model m = read_onnx(dir / "m.onnx");
    const Tensor& ta = *m.graph.find_initializer("a");
    const Tensor& tb = *m.graph.find_initializer("b");
    const Tensor& tc = *m.graph.find_initializer("c");
    CHECK(ta.data.is_view());
    CHECK(tb.data.is_view());
    CHECK(ta.data.file() == tb.data.file());  // one mapping per data file
    CHECK(tb.data.file_offset() == 64);
    CHECK_FALSE(tc.data.is_view());
    CHECK(reinterpret_cast<uintptr_t>(tc.data.bytes().data()) % alignof(float) == 0);
    CHECK(ta.to_floats() == std::vector<float>{1, 2, 3, 4});
    CHECK(tb.to_floats() == std::vector<float>{-1, 0.5f});
    CHECK(tc.to_floats() == std::vector<float>{7, 8});

    REQUIRE(m.graph.opaque_sparse_initializers.size() == 1);
    onnx::SparseTensorProto sparse_back;
    REQUIRE(sparse_back.ParseFromString(m.graph.opaque_sparse_initializers[0]));
    CHECK(sparse_back.values().data_location() == onnx::TensorProto::DEFAULT);
    CHECK(sparse_back.values().external_data_size() == 0);
    CHECK(sparse_back.values().raw_data() == data.substr(64, 8));
}

TEST_CASE("ExternalData::Always writes large tensors to one 64-byte aligned data file", "[onnx]") {
    test::TempDir dir;
    fs::create_directories(dir / "a");
    fs::create_directories(dir / "b");
    Model m = sized_model({25, 500, 1200, 300});  // 100, 2000, 4800, 1200 bytes
    OnnxWriteOptions options = opts(ExternalData::Always);
    write_onnx(m, dir / "a/model.onnx", options);
    CHECK(files_in(dir / "a") == std::vector<std::string>{"model.onnx", "model.onnx.data"});

    auto proto = parse_file(dir / "a/model.onnx");
    const auto& inits = proto.graph().initializer();
    CHECK(inits[0].data_location() == onnx::TensorProto::DEFAULT);  // 100 bytes stay inline
    CHECK(inits[0].raw_data().size() == 100);
    uint64_t end = 0;
    std::vector<const onnx::TensorProto*> external = {&inits[1], &inits[2], &inits[3],
                                                      &proto.graph().node(0).attribute(0).t()};
    for (const auto* t : external) {
        INFO(t->name());
        CHECK(t->data_location() == onnx::TensorProto::EXTERNAL);
        CHECK_FALSE(t->has_raw_data());
        auto e = external_entries(*t);
        CHECK(e["location"] == "model.onnx.data");
        uint64_t offset = std::stoull(e["offset"]);
        CHECK(offset % 64 == 0);
        CHECK(offset >= end);  // in graph order, no overlap
        end = offset + std::stoull(e["length"]);
    }
    CHECK(fs::file_size(dir / "a/model.onnx.data") == end);

    Model back = read_onnx(dir / "a/model.onnx");
    CHECK(dump(back) == dump(m));
    CHECK(back.graph.nodes[0].attributes[0].tensors[0].data.is_view());

    // Same model, same file name: byte-identical model and data files.
    write_onnx(back, dir / "b/model.onnx", options);
    CHECK(test::read_file(dir / "b/model.onnx") == test::read_file(dir / "a/model.onnx"));
    CHECK(test::read_file(dir / "b/model.onnx.data") == test::read_file(dir / "a/model.onnx.data"));

    // A chosen data file name.
    write_onnx(m, dir / "b/named.onnx", opts(ExternalData::Always, 1024, "weights.bin"));
    CHECK(fs::exists(dir / "b/weights.bin"));
    CHECK(dump(read_onnx(dir / "b/named.onnx")) == dump(m));
}

TEST_CASE("ExternalData::Never and small Auto models stay in one file", "[onnx]") {
    test::TempDir dir;
    Model m = sized_model({25, 5000});
    write_onnx(m, dir / "never.onnx", opts(ExternalData::Never));
    write_onnx(m, dir / "auto.onnx");  // Auto: far below the 2 GB limit
    CHECK(files_in(dir.path()) == std::vector<std::string>{"auto.onnx", "never.onnx"});
    CHECK(dump(read_onnx(dir / "never.onnx")) == dump(m));
    CHECK(dump(read_onnx(dir / "auto.onnx")) == dump(m));
}

TEST_CASE("a model can be written over the file it was read from", "[onnx]") {
    test::TempDir dir;
    Model m = sized_model({25, 500, 1200});
    const std::string expected = dump(m);
    write_onnx(m, dir / "m.onnx", opts(ExternalData::Always));

    // External -> external onto the same model and data file: the views point into the
    // old data file's mapping while the new one is renamed over it.
    Model in = read_onnx(dir / "m.onnx");
    REQUIRE(in.graph.initializers[1].data.is_view());
    write_onnx(in, dir / "m.onnx", opts(ExternalData::Always));
    CHECK(dump(in) == expected);  // the old mapping is still intact
    CHECK(dump(read_onnx(dir / "m.onnx")) == expected);

    // External -> inline onto the same model file.
    Model again = read_onnx(dir / "m.onnx");
    write_onnx(again, dir / "m.onnx", opts(ExternalData::Never));
    CHECK(parse_file(dir / "m.onnx").graph().initializer(1).has_raw_data());
    CHECK(dump(read_onnx(dir / "m.onnx")) == expected);
}

TEST_CASE("a failed ONNX write leaves no files behind", "[onnx]") {
    test::TempDir dir;
    Model bad = sized_model({25, 500});
    bad.graph.initializers[1].shape = {499};  // bytes no longer match dtype x shape
    CHECK_THROWS_WITH(
        write_onnx(bad, dir / "bad.onnx", opts(ExternalData::Always, 16, "")),
        Catch::Contains("bad.onnx: tensor 't1'") && Catch::Contains("needs 1996 bytes"));
    CHECK(files_in(dir.path()).empty());

    Model m = sized_model({25});
    CHECK_THROWS_WITH(write_onnx(m, dir / "m.onnx", opts(ExternalData::Always, 16, "../up.data")),
                      Catch::Contains("must be a plain file name"));
    CHECK_THROWS_WITH(write_onnx(m, dir / "m.onnx", opts(ExternalData::Always, 16, "m.onnx")),
                      Catch::Contains("would overwrite the model"));
    CHECK(files_in(dir.path()).empty());
}

TEST_CASE("ExternalData::Never refuses a model over protobuf's 2 GB limit", "[onnx]") {
    test::TempDir dir;
    // A sparse 2.2 GB file: mapped as a view, never touched, so this costs no memory.
    const uint64_t size = 2'200'000'000;
    {
        int fd = ::open((dir / "big.bin").c_str(), O_CREAT | O_WRONLY, 0644);
        REQUIRE(fd >= 0);
        REQUIRE(::ftruncate(fd, static_cast<off_t>(size)) == 0);
        ::close(fd);
    }
    Model m;
    Tensor t;
    t.name = "huge";
    t.dtype = DType::U8;
    t.shape = {static_cast<int64_t>(size)};
    t.data = TensorData::view(MappedFile::open(dir / "big.bin"), 0, size);
    m.graph.initializers.push_back(t);
    CHECK_THROWS_WITH(write_onnx(m, dir / "m.onnx", opts(ExternalData::Never)),
                      Catch::Contains("over protobuf's 2 GB limit"));
    CHECK(files_in(dir.path()) == std::vector<std::string>{"big.bin"});
}

namespace {

struct RealModel {
    fs::path path;
    std::vector<std::string> oracle_args;  // input shapes for ort_compare.py
};

std::vector<RealModel> real_models() {
    return {
        {test::shared_models() / "mnist/mnist-cnn.onnx", {}},
        {test::shared_models() / "stories260k/model.onnx",
         {"--dim", "T=16", "--int-range", "input_ids=0,512"}},
        {test::model_cache() / "ppocr/ch_PP-OCRv4_rec_infer.onnx", {"--shape", "x=1,3,48,320"}},
        {test::model_cache() / "ppocr/ch_ppocr_mobile_v2.0_cls_infer.onnx",
         {"--shape", "x=1,3,48,192"}},
    };
}

nlohmann::json compare_in_ort(const RealModel& model, const fs::path& written,
                              std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {model.path.string(), written.string()};
    args.insert(args.end(), model.oracle_args.begin(), model.oracle_args.end());
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = test::run_oracle("ort_compare.py", args);
    INFO(r.out << r.err);
    REQUIRE(!r.out.empty());
    auto summary = nlohmann::json::parse(r.out);
    summary["exit_code"] = r.exit_code;
    return summary;
}

void check_real_model_round_trip(const RealModel& model) {
    EP_REQUIRE_FILE_OR_SKIP(model.path);
    test::TempDir dir;
    Model m = read_onnx(model.path);
    CHECK(verify(m).empty());

    SECTION("inline") {
        fs::path out = dir / model.path.filename().string();
        write_onnx(m, out);
        auto summary = compare_in_ort(model, out);
        INFO(summary.dump());
        CHECK(summary["exit_code"] == 0);
        CHECK(summary["ok"] == true);
        CHECK(summary["checker"] != "failed");
        for (const auto& [name, o] : summary["outputs"].items()) CHECK(o["bitwise_equal"] == true);
        // Reading what was written gives the same model again.
        CHECK(dump(read_onnx(out)) == dump(m));
    }
    SECTION("external data") {
        fs::path out = dir / model.path.filename().string();
        write_onnx(m, out, opts(ExternalData::Always));
        REQUIRE(fs::exists(out.string() + ".data"));
        auto summary = compare_in_ort(model, out);
        INFO(summary.dump());
        CHECK(summary["exit_code"] == 0);
        CHECK(summary["ok"] == true);
        for (const auto& [name, o] : summary["outputs"].items()) CHECK(o["bitwise_equal"] == true);
        auto r = test::run_oracle("external_data_compare.py", {model.path.string(), out.string()});
        INFO(r.out << r.err);
        CHECK(r.exit_code == 0);
        CHECK(nlohmann::json::parse(r.out)["external_tensors"].get<int>() > 0);
    }
}

}  // namespace

TEST_CASE("mnist-cnn round trip computes bit-identical outputs in ONNX Runtime", "[onnx][real]") {
    check_real_model_round_trip(real_models()[0]);
}

TEST_CASE("stories260k round trip computes bit-identical logits in ONNX Runtime", "[onnx][real]") {
    check_real_model_round_trip(real_models()[1]);
}

TEST_CASE("PP-OCRv4 rec round trip computes bit-identical outputs in ONNX Runtime",
          "[onnx][real]") {
    check_real_model_round_trip(real_models()[2]);
}

TEST_CASE("PP-OCR mobile cls round trip computes bit-identical outputs in ONNX Runtime",
          "[onnx][real]") {
    check_real_model_round_trip(real_models()[3]);
}

TEST_CASE("ort_compare.py reports a changed weight in both modes", "[onnx][real]") {
    RealModel model = real_models()[0];
    EP_REQUIRE_FILE_OR_SKIP(model.path);
    test::TempDir dir;
    Model m = read_onnx(model.path);
    // Nudge one weight of the final Gemm's bias: outputs change slightly.
    Tensor* bias = nullptr;
    for (auto& t : m.graph.initializers)
        if (t.shape.size() == 1 && t.shape[0] == 10) bias = &t;
    REQUIRE(bias != nullptr);
    bias->mutable_values<float>()[3] += 0.5f;
    write_onnx(m, dir / "nudged.onnx");

    auto bitwise = compare_in_ort(model, dir / "nudged.onnx");
    CHECK(bitwise["exit_code"] == 1);
    CHECK(bitwise["ok"] == false);
    auto loose = compare_in_ort(model, dir / "nudged.onnx", {"--mode", "tol", "--rtol", "0.5"});
    CHECK(loose["exit_code"] == 0);
    auto tight = compare_in_ort(model, dir / "nudged.onnx", {"--mode", "tol", "--rtol", "1e-4"});
    CHECK(tight["exit_code"] == 1);
    double rel = tight["outputs"]["output"]["rel"].get<double>();
    CHECK(rel > 1e-4);
    CHECK(rel < 0.5);
}

namespace {

// y = x + b, x float [1, 4]: with a NaN in b, y has a NaN in the same place.
fs::path add_bias_model(const fs::path& path, std::vector<float> bias) {
    Model m;
    m.opset_imports.push_back({"", 17});
    m.graph.name = "add_bias";
    ValueType type;
    type.elem = DType::F32;
    type.shape = std::vector<Dim>{Dim{1, "", ""}, Dim{4, "", ""}};
    m.graph.inputs.push_back(ValueInfo{"x", type, ""});
    m.graph.outputs.push_back(ValueInfo{"y", type, ""});
    m.graph.initializers.push_back(make_f32_tensor("b", {1, 4}, bias));
    Node add;
    add.name = "add";
    add.op_type = "Add";
    add.inputs = {"x", "b"};
    add.outputs = {"y"};
    m.graph.nodes.push_back(add);
    write_onnx(m, path);
    return path;
}

}  // namespace

TEST_CASE("ort_compare.py fails NaN in one output, all-NaN included, in both modes",
          "[onnx][xcheck]") {
    test::TempDir dir;
    const float nan = std::numeric_limits<float>::quiet_NaN();
    auto clean = add_bias_model(dir / "clean.onnx", {0, 0, 0, 0});
    auto one_nan = add_bias_model(dir / "one_nan.onnx", {0, nan, 0, 0});
    auto all_nan = add_bias_model(dir / "all_nan.onnx", {nan, nan, nan, nan});
    auto one_nan_again = add_bias_model(dir / "one_nan_again.onnx", {0, nan, 0, 0});
    auto other_nan = add_bias_model(dir / "other_nan.onnx", {0, 0, nan, 0});
    auto expect_exit = [&](const fs::path& a, const fs::path& b, const char* mode, int want) {
        auto r = test::run_oracle("ort_compare.py",
                                  {a.string(), b.string(), "--mode", mode, "--rtol", "1e9"});
        INFO(a.filename() << " vs " << b.filename() << " " << mode << ": " << r.out << r.err);
        CHECK(r.exit_code == want);
        REQUIRE(!r.out.empty());
        auto summary = nlohmann::json::parse(r.out);
        CHECK(summary["ok"] == (want == 0));
        CHECK(summary["checker"] != "failed");
        CHECK(summary["outputs"]["y"]["ok"] == (want == 0));  // the values decide
    };
    for (const char* mode : {"bitwise", "tol"}) {
        // A NaN the original does not have fails, however loose the tolerance.
        expect_exit(clean, one_nan, mode, 1);
        expect_exit(clean, all_nan, mode, 1);
        expect_exit(one_nan, clean, mode, 1);
        expect_exit(one_nan, other_nan, mode, 1);
        // The same NaN in the same place in both is equal.
        expect_exit(one_nan, one_nan_again, mode, 0);
        expect_exit(clean, clean, mode, 0);
    }
}

TEST_CASE("a model over 2 GB round-trips bit-identically with peak RSS under 1 GB",
          "[onnx][large]") {
    fs::path script = test::source_dir() / "scripts/large_model_roundtrip.sh";
    test::TempDir dir;
    auto r = test::run({"bash", script.string(), EDGEPACK_ONNX_ROUNDTRIP, dir.path().string()});
    INFO(r.out << r.err);
    REQUIRE(!r.out.empty());
    auto lines_end = r.out.find_last_not_of('\n');
    auto line_start = r.out.rfind('\n', lines_end);
    auto summary =
        nlohmann::json::parse(r.out.substr(line_start == std::string::npos ? 0 : line_start + 1));
    CHECK(r.exit_code == 0);
    CHECK(summary["ok"] == true);
    CHECK(summary["data_bytes"].get<uint64_t>() > (uint64_t{2} << 30));
    CHECK(summary["peak_rss_kb"].get<uint64_t>() > 0);
    CHECK(summary["peak_rss_kb"].get<uint64_t>() < 1024 * 1024);
    CHECK(summary["mismatches"].empty());
    // The script removes its 2.5 GB of files.
    CHECK(files_in(dir.path()).empty());
}

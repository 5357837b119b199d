"""kdcgen - the seeded weight / input generator shared by the Python fixture
generator and the C tests (tests/util/weightgen.c implements the same
functions and must produce bit-identical float32 values).

Generator
---------
Every value depends only on (seed, tensor name, element index):

    key   = fnv1a64(name bytes) ^ seed
    z     = splitmix64_mix(key + (i + 1) * 0x9E3779B97F4A7C15)   (mod 2**64)
    u     = z >> 40                                   (24 random bits)
    t     = (2*u + 1 - 2**24) / 2**24                 (exact, in (-1, 1))
    value = float32(c32 + a32 * t)                    (computed in double)

where a32 and c32 are a and c first rounded to float32.  a32 * t has at most
24 + 25 significant bits, so it is exact in double; c32 + a32*t is then one
correctly rounded double addition (a fused multiply-add would give the same
result, because the product is exact), and the final double -> float32
conversion rounds to nearest even on both sides.  So C and numpy agree bit
for bit whatever the compiler does about FMA contraction.

Per-tensor distributions (by name and shape), uniform on [c - a, c + a]:
  conv weight (4-D)            c = 0, a = sqrt(6 / fan_in)   (He-uniform)
  linear weight (2-D)          c = 0, a = sqrt(6 / fan_in)
  BN weight                    c = 1, a = 0.5   ([0.5, 1.5])
    ... of the last BN of a ResNet bottleneck branch (bnK where K is the
        branch's last conv, i.e. bn3): c = RES_BN_C, a = RES_BN_A, so the
        residual sum grows slowly through 36 blocks instead of doubling
  BN bias                      c = 0, a = 0.2
  BN running_mean              c = 0, a = 0.2
  BN running_var               c = 1, a = 0.5
  fc / classifier bias         c = 0, a = 0.05
  num_batches_tracked          int64 scalar 0
  bias of a detector tensor    c = 0, a = 0.05   (names starting with
    backbone.fpn., neck., rpn., roi_heads., bbox_head. or head.: FPN / head
    conv and fc biases; FPN and head conv weights follow the He-uniform conv
    weight rule above, so the four ReLU convs of a RetinaNet head branch
    keep the scale of the FPN levels)

Detection-backbone schemes (FPN_SCHEMES; names include the detector's own
"backbone." etc., the writer's prefix goes in front of them; num_classes is
ignored): the ResNet50 body of scheme "resnet50" without fc under
"backbone.body." (torchvision) or "backbone." (mmdetection), with or without
num_batches_tracked, then the FPN tensors (FPN_CH output channels), then a
few detection-head tensors (which libkdcam must ignore):
  resnet50_fpn_tv          torchvision Faster R-CNN: FrozenBN body (no
                           num_batches_tracked), fpn.inner_blocks.i.0 /
                           layer_blocks.i.0 for C2..C5 (i = 0..3), max-pool
                           level; heads rpn.* and roi_heads.*
  resnet50_fpn_tv_old      the same with the old spelling inner_blocks.i.weight
                           (no ".0") and a BatchNorm2d body (num_batches_tracked
                           present: eps 1e-5); no heads
  resnet50_fpn_tv_p6p7     torchvision RetinaNet v1: FrozenBN body, C3..C5
                           (i = 0..2), extra_blocks.p6 (in FPN_CH: from P5)
                           and p7; no heads
  resnet50_fpn_tv_p6p7_v2  RetinaNet v2: as above, p6 in 2048 (from C5)
  resnet50_fpn_mm_retina   mmdetection RetinaNet: body under backbone. with
                           num_batches_tracked, neck.lateral_convs.i.conv (i =
                           0..2, C3..C5), neck.fpn_convs.0..4.conv (3, 4: the
                           stride-2 extra convs on C5 and on P6); heads
                           bbox_head.* (a partial head: cls_convs.0, retina_cls)

Full RetinaNet schemes (the head is part of the model, libkdcam builds it;
RETINA_A = 9 anchors, RETINA_K = 3 classes, F = FPN_CH, 4 convs per branch,
every conv 3x3 with bias):
  resnet50_retina_tv       resnet50_fpn_tv_p6p7, then torchvision (>= 0.13)
                           RetinaNetHead in state_dict order:
                           head.classification_head.conv.i.0.weight (F,F,3,3)
                           / .bias (i = 0..3), head.classification_head.
                           cls_logits (A*K,F,3,3), head.regression_head.conv.
                           i.0.*, head.regression_head.bbox_reg (A*4,F,3,3)
  resnet50_retina_tv_old   the same with the older head spelling (conv =
                           Sequential(Conv2d, ReLU, ...)): conv.{2i}.weight /
                           .bias (conv.0, .2, .4, .6) in both branches
  resnet50_retina_mm       resnet50_fpn_mm_retina's body and neck, then
                           mmdetection's RetinaHead: bbox_head.cls_convs.i.
                           conv.* (i = 0..3), bbox_head.reg_convs.i.conv.*,
                           bbox_head.retina_cls (A*K,F,3,3), bbox_head.
                           retina_reg (A*4,F,3,3)

Inputs: fill(name="input", n, seed, c=0, a=2), row-major NCHW.

Sampling of large tensors (fixtures): for n elements and K samples
(n > K), step = n // K and index j (0 <= j < K) is
    j * step + ((j * 2654435761) % step).
"""

import json
import math
import struct

import numpy as np

MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15

RES_BN_C = 0.25   # centre of bn3.weight (last BN of a bottleneck branch)
RES_BN_A = 0.1

RESNET_BLOCKS = {
    "resnet50": (3, 4, 6, 3),
    "resnet101": (3, 4, 23, 3),
    "resnet152": (3, 8, 36, 3),
}

# (in, out, stride) of the KD MobileNetV1 blocks model.1 .. model.13
MBV1_BLOCKS = [(32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1),
               (256, 512, 2), (512, 512, 1), (512, 512, 1), (512, 512, 1), (512, 512, 1),
               (512, 512, 1), (512, 1024, 2), (1024, 1024, 1)]

# KD block index (1..13) -> timm (stage, block)
MBV1_TIMM_POS = {1: (0, 0), 2: (1, 0), 3: (1, 1), 4: (2, 0), 5: (2, 1), 6: (3, 0), 7: (3, 1),
                 8: (3, 2), 9: (3, 3), 10: (3, 4), 11: (3, 5), 12: (4, 0), 13: (4, 1)}


def fnv1a64(name):
    h = 0xCBF29CE484222325
    for b in name.encode("utf-8"):
        h ^= b
        h = (h * 0x100000001B3) & MASK64
    return h


def _mix(z):
    """splitmix64 finalizer on a uint64 numpy array (wrapping arithmetic)."""
    z = z ^ (z >> np.uint64(30))
    z = z * np.uint64(0xBF58476D1CE4E5B9)
    z = z ^ (z >> np.uint64(27))
    z = z * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return z


def raw_u24(name, n, seed, start=0):
    """The 24-bit integers u for elements start .. start+n-1 (uint64 array)."""
    key = np.uint64((fnv1a64(name) ^ (seed & MASK64)) & MASK64)
    idx = np.arange(start + 1, start + n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = key + idx * np.uint64(GOLDEN)
        z = _mix(z)
    return z >> np.uint64(40)


def fill(name, n, seed, c, a):
    """n float32 values uniform on [c - a, c + a] (see module doc)."""
    c32 = float(np.float32(c))
    a32 = float(np.float32(a))
    out = np.empty(n, dtype=np.float32)
    chunk = 1 << 22
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        u = raw_u24(name, m, seed, s).astype(np.float64)
        t = (2.0 * u + (1.0 - 16777216.0)) / 16777216.0
        out[s:s + m] = (c32 + a32 * t).astype(np.float32)
    return out


DET_BIAS_PREFIXES = ("backbone.fpn.", "neck.", "rpn.", "roi_heads.", "bbox_head.", "head.")
DET_BIAS_A = 0.05


def tensor_dist(name, shape):
    """(kind, c, a) for a tensor; kind is 'f32' or 'i64zero'."""
    base = name.rsplit(".", 1)
    leaf = base[-1]
    module = base[0] if len(base) > 1 else ""
    mleaf = module.rsplit(".", 1)[-1]
    if leaf == "num_batches_tracked":
        return ("i64zero", 0.0, 0.0)
    if leaf == "bias" and name.startswith(DET_BIAS_PREFIXES):
        return ("f32", 0.0, DET_BIAS_A)
    if leaf == "weight" and len(shape) == 4:
        fan_in = shape[1] * shape[2] * shape[3]
        return ("f32", 0.0, math.sqrt(6.0 / fan_in))
    if leaf == "weight" and len(shape) == 2:
        return ("f32", 0.0, math.sqrt(6.0 / shape[1]))
    if leaf == "bias" and mleaf in ("fc", "classifier"):
        return ("f32", 0.0, 0.05)
    if leaf == "weight" and len(shape) == 1:
        if mleaf == "bn3":
            return ("f32", RES_BN_C, RES_BN_A)
        return ("f32", 1.0, 0.5)
    if leaf == "bias" and len(shape) == 1:
        return ("f32", 0.0, 0.2)
    if leaf == "running_mean":
        return ("f32", 0.0, 0.2)
    if leaf == "running_var":
        return ("f32", 1.0, 0.5)
    raise ValueError("kdcgen: no distribution for tensor %s %s" % (name, shape))


def _bn(p, c):
    return [(p + ".weight", (c,)), (p + ".bias", (c,)), (p + ".running_mean", (c,)),
            (p + ".running_var", (c,)), (p + ".num_batches_tracked", ())]


FPN_CH = 64  # FPN output channels of the generated detectors (torchvision's: 256)
RETINA_A = 9  # anchors per cell of the RetinaNet heads (3 scales x 3 ratios)
RETINA_K = 3  # classes of the RetinaNet heads
RETINA_CONVS = 4  # ReLU convs per head branch

# scheme -> (layout, body prefix, num_batches_tracked, stages used (1-based),
#            extra, old spelling, heads: None, "tv" / "mm" (a few ignored head
#            tensors) or "retina_tv" / "retina_tv_old" / "retina_mm" (full head))
FPN_SCHEMES = {
    "resnet50_fpn_tv": ("tv", "backbone.body.", False, (1, 2, 3, 4), "pool", False, "tv"),
    "resnet50_fpn_tv_old": ("tv", "backbone.body.", True, (1, 2, 3, 4), "pool", True, None),
    "resnet50_fpn_tv_p6p7": ("tv", "backbone.body.", False, (2, 3, 4), "p6p7", False, None),
    "resnet50_fpn_tv_p6p7_v2": ("tv", "backbone.body.", False, (2, 3, 4), "p6p7_c5", False, None),
    "resnet50_fpn_mm_retina": ("mm", "backbone.", True, (2, 3, 4), "on_input2", False, "mm"),
    "resnet50_retina_tv": ("tv", "backbone.body.", False, (2, 3, 4), "p6p7", False, "retina_tv"),
    "resnet50_retina_tv_old": ("tv", "backbone.body.", False, (2, 3, 4), "p6p7", False,
                               "retina_tv_old"),
    "resnet50_retina_mm": ("mm", "backbone.", True, (2, 3, 4), "on_input2", False, "retina_mm"),
}


def _retina_head_specs(heads):
    """The RetinaNet head tensors of a scheme, in state_dict order."""
    F = FPN_CH
    A, K = RETINA_A, RETINA_K
    out = []
    if heads in ("retina_tv", "retina_tv_old"):
        for branch, oname, oc in (("classification_head", "cls_logits", A * K),
                                  ("regression_head", "bbox_reg", A * 4)):
            for i in range(RETINA_CONVS):
                p = ("head.%s.conv.%d.0" % (branch, i) if heads == "retina_tv"
                     else "head.%s.conv.%d" % (branch, 2 * i))
                out.append((p + ".weight", (F, F, 3, 3)))
                out.append((p + ".bias", (F,)))
            out.append(("head.%s.%s.weight" % (branch, oname), (oc, F, 3, 3)))
            out.append(("head.%s.%s.bias" % (branch, oname), (oc,)))
    else:
        for branch in ("cls_convs", "reg_convs"):
            for i in range(RETINA_CONVS):
                out.append(("bbox_head.%s.%d.conv.weight" % (branch, i), (F, F, 3, 3)))
                out.append(("bbox_head.%s.%d.conv.bias" % (branch, i), (F,)))
        out += [("bbox_head.retina_cls.weight", (A * K, F, 3, 3)),
                ("bbox_head.retina_cls.bias", (A * K,)),
                ("bbox_head.retina_reg.weight", (A * 4, F, 3, 3)),
                ("bbox_head.retina_reg.bias", (A * 4,))]
    return out


def _fpn_specs(scheme):
    layout, bprefix, nbt, stages, extra, old, heads = FPN_SCHEMES[scheme]
    out = []
    for name, shape in tensor_specs("resnet50", 1000):
        if name.startswith("fc."):
            continue
        if not nbt and name.endswith(".num_batches_tracked"):
            continue
        out.append((bprefix + name, shape))
    cins = [256 << (s - 1) for s in stages]
    F = FPN_CH
    if layout == "tv":
        sp = "" if old else ".0"
        for i, ci in enumerate(cins):
            out.append(("backbone.fpn.inner_blocks.%d%s.weight" % (i, sp), (F, ci, 1, 1)))
            out.append(("backbone.fpn.inner_blocks.%d%s.bias" % (i, sp), (F,)))
        for i in range(len(cins)):
            out.append(("backbone.fpn.layer_blocks.%d%s.weight" % (i, sp), (F, F, 3, 3)))
            out.append(("backbone.fpn.layer_blocks.%d%s.bias" % (i, sp), (F,)))
        if extra in ("p6p7", "p6p7_c5"):
            c6 = F if extra == "p6p7" else 2048
            out.append(("backbone.fpn.extra_blocks.p6.weight", (F, c6, 3, 3)))
            out.append(("backbone.fpn.extra_blocks.p6.bias", (F,)))
            out.append(("backbone.fpn.extra_blocks.p7.weight", (F, F, 3, 3)))
            out.append(("backbone.fpn.extra_blocks.p7.bias", (F,)))
    else:
        for i, ci in enumerate(cins):
            out.append(("neck.lateral_convs.%d.conv.weight" % i, (F, ci, 1, 1)))
            out.append(("neck.lateral_convs.%d.conv.bias" % i, (F,)))
        for i in range(len(cins) + 2):
            ci = 2048 if i == len(cins) else F
            out.append(("neck.fpn_convs.%d.conv.weight" % i, (F, ci, 3, 3)))
            out.append(("neck.fpn_convs.%d.conv.bias" % i, (F,)))
    if heads == "tv":
        out += [("rpn.head.conv.0.0.weight", (F, F, 3, 3)), ("rpn.head.conv.0.0.bias", (F,)),
                ("rpn.head.cls_logits.weight", (3, F, 1, 1)), ("rpn.head.cls_logits.bias", (3,)),
                ("roi_heads.box_head.fc6.weight", (32, F * 49)),
                ("roi_heads.box_head.fc6.bias", (32,))]
    elif heads == "mm":
        out += [("bbox_head.cls_convs.0.conv.weight", (F, F, 3, 3)),
                ("bbox_head.cls_convs.0.conv.bias", (F,)),
                ("bbox_head.retina_cls.weight", (9, F, 3, 3)),
                ("bbox_head.retina_cls.bias", (9,))]
    elif heads is not None:
        out += _retina_head_specs(heads)
    return out


def tensor_specs(scheme, num_classes):
    """[(name, shape)] of every tensor of a scheme, in PyTorch state_dict order."""
    out = []
    if scheme in FPN_SCHEMES:
        return _fpn_specs(scheme)
    if scheme in RESNET_BLOCKS:
        out.append(("conv1.weight", (64, 3, 7, 7)))
        out += _bn("bn1", 64)
        inplanes = 64
        for L, nb in enumerate(RESNET_BLOCKS[scheme], start=1):
            planes = 64 << (L - 1)
            for b in range(nb):
                p = "layer%d.%d" % (L, b)
                out.append((p + ".conv1.weight", (planes, inplanes, 1, 1)))
                out += _bn(p + ".bn1", planes)
                out.append((p + ".conv2.weight", (planes, planes, 3, 3)))
                out += _bn(p + ".bn2", planes)
                out.append((p + ".conv3.weight", (planes * 4, planes, 1, 1)))
                out += _bn(p + ".bn3", planes * 4)
                if b == 0:
                    out.append((p + ".downsample.0.weight", (planes * 4, inplanes, 1, 1)))
                    out += _bn(p + ".downsample.1", planes * 4)
                inplanes = planes * 4
        out.append(("fc.weight", (num_classes, 2048)))
        out.append(("fc.bias", (num_classes,)))
    elif scheme == "mobilenetv1":
        out.append(("model.0.0.weight", (32, 3, 3, 3)))
        out += _bn("model.0.1", 32)
        for k, (ci, co, _s) in enumerate(MBV1_BLOCKS, start=1):
            p = "model.%d" % k
            out.append((p + ".0.weight", (ci, 1, 3, 3)))
            out += _bn(p + ".1", ci)
            out.append((p + ".3.weight", (co, ci, 1, 1)))
            out += _bn(p + ".4", co)
        out.append(("fc.weight", (num_classes, 1024)))
        out.append(("fc.bias", (num_classes,)))
    elif scheme == "mobilenetv1_timm":
        out.append(("conv_stem.weight", (32, 3, 3, 3)))
        out += _bn("bn1", 32)
        for k, (ci, co, _s) in enumerate(MBV1_BLOCKS, start=1):
            p = "blocks.%d.%d" % MBV1_TIMM_POS[k]
            out.append((p + ".conv_dw.weight", (ci, 1, 3, 3)))
            out += _bn(p + ".bn1", ci)
            out.append((p + ".conv_pw.weight", (co, ci, 1, 1)))
            out += _bn(p + ".bn2", co)
        out.append(("classifier.weight", (num_classes, 1024)))
        out.append(("classifier.bias", (num_classes,)))
    else:
        raise ValueError("kdcgen: unknown scheme %r" % scheme)
    return out


def timm_to_kd_name(name):
    """Maps a timm mobilenetv1_100 tensor name to the KD MobileNetV1 name."""
    if name.startswith("conv_stem."):
        return "model.0.0." + name[len("conv_stem."):]
    if name.startswith("bn1."):
        return "model.0.1." + name[len("bn1."):]
    if name.startswith("classifier."):
        return "fc." + name[len("classifier."):]
    if name.startswith("blocks."):
        parts = name.split(".")
        s, b = int(parts[1]), int(parts[2])
        k = [kk for kk, pos in MBV1_TIMM_POS.items() if pos == (s, b)][0]
        sub = {"conv_dw": "0", "bn1": "1", "conv_pw": "3", "bn2": "4"}[parts[3]]
        return "model.%d.%s.%s" % (k, sub, ".".join(parts[4:]))
    raise ValueError("kdcgen: not a timm mobilenetv1 name: %s" % name)


def gen_tensor(name, shape, seed):
    """The generated tensor (float32, or int64 scalar 0 for num_batches_tracked)."""
    kind, c, a = tensor_dist(name, shape)
    if kind == "i64zero":
        return np.zeros(shape, dtype=np.int64)
    n = int(np.prod(shape)) if len(shape) else 1
    return fill(name, n, seed, c, a).reshape(shape)


def state_dict(scheme, seed, num_classes):
    """{name: numpy array} for every tensor of a scheme (names unprefixed)."""
    return {name: gen_tensor(name, shape, seed) for name, shape in tensor_specs(scheme, num_classes)}


def sample_indices(n, k):
    """The fixture sampling formula (see module doc); n > k."""
    step = n // k
    j = np.arange(k, dtype=np.int64)
    return j * step + (j * 2654435761) % step


_ST_DTYPES = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16",
              np.dtype(np.float64): "F64", np.dtype(np.int64): "I64",
              np.dtype(np.int32): "I32"}


def write_safetensors(path, tensors, metadata=None):
    """Writes {name: numpy array} (in the dict's order) as safetensors.

    Header padded with spaces to a multiple of 8; data little-endian,
    contiguous; metadata values must be strings."""
    header = {}
    if metadata is not None:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    off = 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        dt = _ST_DTYPES[arr.dtype]
        b = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hj += b" " * ((8 - len(hj) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    """Minimal reader: returns ({name: numpy array}, metadata)."""
    inv = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64,
           "I32": np.int32, "BF16": None}
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    buf = data[8 + n:]
    out = {}
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        b, e = info["data_offsets"]
        dt = inv[info["dtype"]]
        if dt is None:  # BF16: widen to float32
            u = np.frombuffer(buf[b:e], dtype="<u2").astype(np.uint32) << np.uint32(16)
            arr = u.view(np.float32)
        else:
            arr = np.frombuffer(buf[b:e], dtype=np.dtype(dt).newbyteorder("<"))
        out[name] = arr.reshape(info["shape"])
    return out, meta

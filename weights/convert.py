#!/usr/bin/env python3
"""convert.py - converts a PyTorch checkpoint (.pth / .pth.tar / .pt) to safetensors.

Needs PyTorch (libkdcam itself does not). Examples:

    weights/convert.py resnet50-0676ba61.pth resnet50.safetensors
    weights/convert.py --list ckpt.pth.tar
    weights/convert.py --key student --strip backbone. ckpt.pth.tar student.safetensors

What it does:
  * torch.load(path, map_location="cpu"). A pickled checkpoint can run code
    when it is loaded: convert only files you trust. (PyTorch >= 2.6 loads
    with weights_only=True by default, which refuses whole pickled modules;
    --trust-pickle passes weights_only=False where PyTorch knows the option.)
  * Unwraps the state dict: an nn.Module gives its state_dict(); a dict without
    tensors is searched for the first of the keys state_dict, model_state_dict,
    model, student, net, s_net, module, teacher, t_net, network, weights, params
    (or the key given with --key), repeatedly.
  * Strips "module." (DataParallel, possibly repeated) from the front of every
    name, and every --strip PREFIX (repeatable) likewise. "model." is NOT
    stripped: it is part of the KD MobileNetV1 names (model.0.0.weight ...).
  * --dtype f32 | f16 | keep (default keep): converts floating tensors;
    integer tensors (BatchNorm num_batches_tracked) are kept as they are.
  * Skips entries that are not tensors, with a note on stderr.
  * Writes safetensors: 8-byte little-endian header length, JSON header padded
    with spaces to a multiple of 8 with __metadata__ {"format": "pt"}, then the
    tensors contiguous, little-endian, in sorted name order. Refuses to
    overwrite an existing file unless --force; writes a temporary file in the
    same directory and renames it.
  * --list prints the names, dtypes and shapes (after unwrapping, stripping and
    dtype conversion) and writes nothing unless an output is also given.
"""

import argparse
import inspect
import json
import os
import struct
import sys
import tempfile

WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "student", "net", "s_net", "module",
                "teacher", "t_net", "network", "weights", "params")


def note(msg):
    print("convert.py: " + msg, file=sys.stderr)


def load_checkpoint(torch, path, trust_pickle):
    kwargs = {"map_location": "cpu"}
    if trust_pickle and "weights_only" in inspect.signature(torch.load).parameters:
        kwargs["weights_only"] = False
    return torch.load(path, **kwargs)


def unwrap(torch, obj, key=None):
    """Returns the state dict (a dict name -> tensor-or-other) inside obj."""
    path = []
    for _ in range(16):
        if isinstance(obj, torch.nn.Module):
            path.append("<nn.Module %s>.state_dict()" % type(obj).__name__)
            obj = obj.state_dict()
            continue
        if not isinstance(obj, dict):
            raise SystemExit("convert.py: the checkpoint (at %s) is a %s, not a state dict"
                             % ("/".join(path) or "top level", type(obj).__name__))
        if any(isinstance(v, torch.Tensor) for v in obj.values()):
            if key is not None and key not in path:
                raise SystemExit("convert.py: --key %s: reached a state dict without that key" % key)
            if path:
                note("state dict taken from " + " -> ".join(path))
            return obj
        names = [key] if key is not None and key in obj else [k for k in WRAPPER_KEYS if k in obj]
        names = [k for k in names if isinstance(obj[k], (dict, torch.nn.Module))]
        if not names:
            raise SystemExit("convert.py: no tensors and no known wrapper key in the checkpoint "
                             "(keys: %s); name one with --key" % ", ".join(map(str, list(obj)[:20])))
        others = [k for k in WRAPPER_KEYS if k in obj and k != names[0]
                  and isinstance(obj[k], (dict, torch.nn.Module))]
        if others:
            note("checkpoint also holds %s; taking %r (choose with --key)"
                 % (", ".join(repr(o) for o in others), names[0]))
        path.append(names[0])
        obj = obj[names[0]]
    raise SystemExit("convert.py: checkpoint nested too deeply")


def strip_name(name, prefixes):
    changed = True
    while changed:
        changed = False
        for p in prefixes:
            if p and name.startswith(p) and len(name) > len(p):
                name = name[len(p):]
                changed = True
    return name


def st_dtype(torch, dt):
    table = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
             torch.float64: "F64", torch.int64: "I64", torch.int32: "I32", torch.int16: "I16",
             torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL"}
    return table.get(dt)


def tensor_bytes(torch, t):
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    a = t.numpy()
    if sys.byteorder != "little" and a.dtype.itemsize > 1:
        a = a.byteswap()
    return a.tobytes()


def collect(torch, sd, prefixes, dtype):
    out = {}
    for name, v in sd.items():
        if not isinstance(v, torch.Tensor):
            note("skipping %s: not a tensor (%s)" % (name, type(v).__name__))
            continue
        new = strip_name(name, prefixes)
        if new in out:
            raise SystemExit("convert.py: two tensors map to the name %s after stripping" % new)
        t = v.detach()
        if t.is_floating_point():
            if dtype == "f32":
                t = t.float()
            elif dtype == "f16":
                t = t.half()
        if st_dtype(torch, t.dtype) is None:
            note("skipping %s: dtype %s has no safetensors name here" % (name, t.dtype))
            continue
        out[new] = t
    return out


def write_safetensors(torch, tensors, path, force):
    if os.path.exists(path) and not force:
        raise SystemExit("convert.py: %s exists (use --force to overwrite)" % path)
    header = {"__metadata__": {"format": "pt"}}
    blobs = []
    off = 0
    for name in sorted(tensors):
        t = tensors[name]
        b = tensor_bytes(torch, t)
        header[name] = {"dtype": st_dtype(torch, t.dtype), "shape": list(t.shape),
                        "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    hj = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    hj += b" " * ((8 - len(hj) % 8) % 8)
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".convert-", suffix=".tmp", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(hj)))
            f.write(hj)
            for b in blobs:
                f.write(b)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return 8 + len(hj) + off


def main(argv=None):
    ap = argparse.ArgumentParser(description="Convert a PyTorch checkpoint to safetensors.")
    ap.add_argument("input", help=".pth / .pth.tar / .pt checkpoint")
    ap.add_argument("output", nargs="?", help="output .safetensors file")
    ap.add_argument("--strip", action="append", default=[], metavar="PREFIX",
                    help="also strip PREFIX from the front of names (repeatable)")
    ap.add_argument("--key", help="take the state dict from this wrapper key")
    ap.add_argument("--dtype", choices=("f32", "f16", "keep"), default="keep",
                    help="floating tensors as float32, float16, or as stored (default)")
    ap.add_argument("--list", action="store_true", help="print names, dtypes and shapes")
    ap.add_argument("--force", action="store_true", help="overwrite an existing output")
    ap.add_argument("--trust-pickle", action="store_true",
                    help="pass weights_only=False to torch.load (only for files you trust)")
    args = ap.parse_args(argv)
    if not args.output and not args.list:
        ap.error("give an output file, or --list")
    if args.output and os.path.exists(args.output) and not args.force:
        raise SystemExit("convert.py: %s exists (use --force to overwrite)" % args.output)

    import torch  # only now, so --help works without PyTorch

    try:
        obj = load_checkpoint(torch, args.input, args.trust_pickle)
    except Exception as e:  # noqa: BLE001 - report any loader failure in one line
        raise SystemExit("convert.py: torch.load(%s) failed: %s: %s"
                         % (args.input, type(e).__name__, e))
    sd = unwrap(torch, obj, args.key)
    tensors = collect(torch, sd, ["module."] + args.strip, args.dtype)
    if not tensors:
        raise SystemExit("convert.py: no tensors to write")
    if args.list:
        for name in sorted(tensors):
            t = tensors[name]
            print("%-60s %-5s %s" % (name, st_dtype(torch, t.dtype), list(t.shape)))
        print("%d tensors, %d elements" % (len(tensors), sum(t.numel() for t in tensors.values())))
    if args.output:
        size = write_safetensors(torch, tensors, args.output, args.force)
        print("wrote %s: %d tensors, %d bytes" % (args.output, len(tensors), size))
    return 0


if __name__ == "__main__":
    sys.exit(main())

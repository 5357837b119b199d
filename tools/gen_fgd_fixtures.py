#!/usr/bin/env python3
"""gen_fgd_fixtures.py - reference values of FGD's attention views for
tests/test_fgd.c (libkdcam's kdc_fgd_attention and kdc_feature_map's FGD
reduction).

    /usr/bin/python3 tools/gen_fgd_fixtures.py

get_attention() below follows yzd-v/FGD mmdet/distillation/losses/fgd.py
FeatureLoss.get_attention as written there (PyTorch, here in float64):
spatial = H*W*softmax over the H*W cells of mean over channels of |F| / T,
channel = C*softmax over channels of the mean over H, then W, of |F| / T.
Writes tests/fixtures/fgd/act.npy (float32, 2 x 6 x 5 x 7, seeded, values
in [-3, 3) with one channel scaled up so the channel view is not flat) and,
for T in (0.5, 2.0), spatial_T.npy (2 x 5 x 7) and channel_T.npy (2 x 6),
float64."""
import os

import numpy as np
import torch
import torch.nn.functional as F

OUT = os.path.join("tests", "fixtures", "fgd")


def get_attention(preds, temp):
    n, c, h, w = preds.shape
    value = torch.abs(preds)
    fea_map = value.mean(axis=1, keepdim=True)
    s_att = (h * w * F.softmax((fea_map / temp).view(n, -1), dim=1)).view(n, h, w)
    channel_map = value.mean(axis=2, keepdim=False).mean(axis=2, keepdim=False)
    c_att = c * F.softmax(channel_map / temp, dim=1)
    return s_att, c_att


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(1301)
    act = rng.uniform(-3.0, 3.0, size=(2, 6, 5, 7)).astype(np.float32)
    act[:, 2] *= 2.5
    np.save(os.path.join(OUT, "act.npy"), act)
    x = torch.from_numpy(act.astype(np.float64))
    for t in (0.5, 2.0):
        s, c = get_attention(x, t)
        tag = ("%g" % t).replace(".", "p")
        np.save(os.path.join(OUT, "spatial_%s.npy" % tag), s.numpy())
        np.save(os.path.join(OUT, "channel_%s.npy" % tag), c.numpy())
        assert abs(float(s.mean()) - 1.0) < 1e-12 and abs(float(c.mean()) - 1.0) < 1e-12


if __name__ == "__main__":
    main()

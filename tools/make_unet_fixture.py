"""Writes tests/fixtures/unet_*.safetensors + .json: the reference PyTorch U-Net of
*The Annotated Diffusion Model* (copied below as the blog gives it, plus our class embedding),
random weights, an input and the output, so the Rust test can check the Burn port against it.

Run once by hand (torch, einops, safetensors from PyPI); the fixtures are committed, torch is not:
    python3 tools/make_unet_fixture.py
"""
import json
import math
import re
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange, reduce
from einops.layers.torch import Rearrange
from safetensors.torch import save_file
from torch import einsum, nn

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures"


def exists(x):
    return x is not None


def default(val, d):
    if exists(val):
        return val
    return d() if callable(d) else d


class Residual(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x, *args, **kwargs):
        return self.fn(x, *args, **kwargs) + x


def Upsample(dim, dim_out=None):
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.Conv2d(dim, default(dim_out, dim), 3, padding=1),
    )


def Downsample(dim, dim_out=None):
    return nn.Sequential(
        Rearrange("b c (h p1) (w p2) -> b (c p1 p2) h w", p1=2, p2=2),
        nn.Conv2d(dim * 4, default(dim_out, dim), 1),
    )


class SinusoidalPositionEmbeddings(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, time):
        half_dim = self.dim // 2
        embeddings = math.log(10000) / (half_dim - 1)
        embeddings = torch.exp(torch.arange(half_dim, device=time.device) * -embeddings)
        embeddings = time[:, None] * embeddings[None, :]
        return torch.cat((embeddings.sin(), embeddings.cos()), dim=-1)


class WeightStandardizedConv2d(nn.Conv2d):
    def forward(self, x):
        eps = 1e-5 if x.dtype == torch.float32 else 1e-3
        weight = self.weight
        mean = reduce(weight, "o ... -> o 1 1 1", "mean")
        var = reduce(weight, "o ... -> o 1 1 1", partial(torch.var, unbiased=False))
        normalized_weight = (weight - mean) * (var + eps).rsqrt()
        return F.conv2d(x, normalized_weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class Block(nn.Module):
    def __init__(self, dim, dim_out, groups=8):
        super().__init__()
        self.proj = WeightStandardizedConv2d(dim, dim_out, 3, padding=1)
        self.norm = nn.GroupNorm(groups, dim_out)
        self.act = nn.SiLU()

    def forward(self, x, scale_shift=None):
        x = self.norm(self.proj(x))
        if exists(scale_shift):
            scale, shift = scale_shift
            x = x * (scale + 1) + shift
        return self.act(x)


class ResnetBlock(nn.Module):
    def __init__(self, dim, dim_out, *, time_emb_dim=None, groups=8):
        super().__init__()
        self.mlp = nn.Sequential(nn.SiLU(), nn.Linear(time_emb_dim, dim_out * 2)) if exists(time_emb_dim) else None
        self.block1 = Block(dim, dim_out, groups=groups)
        self.block2 = Block(dim_out, dim_out, groups=groups)
        self.res_conv = nn.Conv2d(dim, dim_out, 1) if dim != dim_out else nn.Identity()

    def forward(self, x, time_emb=None):
        scale_shift = None
        if exists(self.mlp) and exists(time_emb):
            time_emb = rearrange(self.mlp(time_emb), "b c -> b c 1 1")
            scale_shift = time_emb.chunk(2, dim=1)
        h = self.block1(x, scale_shift=scale_shift)
        h = self.block2(h)
        return h + self.res_conv(x)


class ConvNextBlock(nn.Module):
    def __init__(self, dim, dim_out, *, time_emb_dim=None, mult=2, norm=True):
        super().__init__()
        self.mlp = nn.Sequential(nn.GELU(), nn.Linear(time_emb_dim, dim)) if exists(time_emb_dim) else None
        self.ds_conv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.net = nn.Sequential(
            nn.GroupNorm(1, dim) if norm else nn.Identity(),
            nn.Conv2d(dim, dim_out * mult, 3, padding=1),
            nn.GELU(),
            nn.GroupNorm(1, dim_out * mult),
            nn.Conv2d(dim_out * mult, dim_out, 3, padding=1),
        )
        self.res_conv = nn.Conv2d(dim, dim_out, 1) if dim != dim_out else nn.Identity()

    def forward(self, x, time_emb=None):
        h = self.ds_conv(x)
        if exists(self.mlp) and exists(time_emb):
            h = h + rearrange(self.mlp(time_emb), "b c -> b c 1 1")
        h = self.net(h)
        return h + self.res_conv(x)


class Attention(nn.Module):
    def __init__(self, dim, heads=4, dim_head=32):
        super().__init__()
        self.scale = dim_head**-0.5
        self.heads = heads
        hidden_dim = dim_head * heads
        self.to_qkv = nn.Conv2d(dim, hidden_dim * 3, 1, bias=False)
        self.to_out = nn.Conv2d(hidden_dim, dim, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        qkv = self.to_qkv(x).chunk(3, dim=1)
        q, k, v = map(lambda t: rearrange(t, "b (h c) x y -> b h c (x y)", h=self.heads), qkv)
        q = q * self.scale
        sim = einsum("b h d i, b h d j -> b h i j", q, k)
        sim = sim - sim.amax(dim=-1, keepdim=True).detach()
        attn = sim.softmax(dim=-1)
        out = einsum("b h i j, b h d j -> b h i d", attn, v)
        out = rearrange(out, "b h (x y) d -> b (h d) x y", x=h, y=w)
        return self.to_out(out)


class LinearAttention(nn.Module):
    def __init__(self, dim, heads=4, dim_head=32):
        super().__init__()
        self.scale = dim_head**-0.5
        self.heads = heads
        hidden_dim = dim_head * heads
        self.to_qkv = nn.Conv2d(dim, hidden_dim * 3, 1, bias=False)
        self.to_out = nn.Sequential(nn.Conv2d(hidden_dim, dim, 1), nn.GroupNorm(1, dim))

    def forward(self, x):
        b, c, h, w = x.shape
        qkv = self.to_qkv(x).chunk(3, dim=1)
        q, k, v = map(lambda t: rearrange(t, "b (h c) x y -> b h c (x y)", h=self.heads), qkv)
        q = q.softmax(dim=-2)
        k = k.softmax(dim=-1)
        q = q * self.scale
        context = torch.einsum("b h d n, b h e n -> b h d e", k, v)
        out = torch.einsum("b h d e, b h d n -> b h e n", context, q)
        out = rearrange(out, "b h c (x y) -> b (h c) x y", h=self.heads, x=h, y=w)
        return self.to_out(out)


class PreNorm(nn.Module):
    def __init__(self, dim, fn):
        super().__init__()
        self.fn = fn
        self.norm = nn.GroupNorm(1, dim)

    def forward(self, x):
        return self.fn(self.norm(x))


class Unet(nn.Module):
    def __init__(self, dim, init_dim=None, out_dim=None, dim_mults=(1, 2, 4, 8), channels=3,
                 resnet_block_groups=4, use_convnext=False, convnext_mult=2, heads=4, dim_head=32,
                 num_classes=0):
        super().__init__()
        self.channels = channels
        init_dim = default(init_dim, dim)
        self.init_conv = nn.Conv2d(channels, init_dim, 1, padding=0)
        dims = [init_dim, *map(lambda m: dim * m, dim_mults)]
        in_out = list(zip(dims[:-1], dims[1:]))
        if use_convnext:
            block_klass = partial(ConvNextBlock, mult=convnext_mult)
        else:
            block_klass = partial(ResnetBlock, groups=resnet_block_groups)
        attn = partial(Attention, heads=heads, dim_head=dim_head)
        lin_attn = partial(LinearAttention, heads=heads, dim_head=dim_head)
        time_dim = dim * 4
        self.time_mlp = nn.Sequential(
            SinusoidalPositionEmbeddings(dim), nn.Linear(dim, time_dim), nn.GELU(), nn.Linear(time_dim, time_dim)
        )
        # Our addition for classifier-free guidance: a class vector added to the time embedding.
        self.class_emb = nn.Embedding(num_classes + 1, time_dim) if num_classes else None
        self.downs = nn.ModuleList([])
        self.ups = nn.ModuleList([])
        num_resolutions = len(in_out)
        for ind, (dim_in, dim_out) in enumerate(in_out):
            is_last = ind >= (num_resolutions - 1)
            self.downs.append(nn.ModuleList([
                block_klass(dim_in, dim_in, time_emb_dim=time_dim),
                block_klass(dim_in, dim_in, time_emb_dim=time_dim),
                Residual(PreNorm(dim_in, lin_attn(dim_in))),
                Downsample(dim_in, dim_out) if not is_last else nn.Conv2d(dim_in, dim_out, 3, padding=1),
            ]))
        mid_dim = dims[-1]
        self.mid_block1 = block_klass(mid_dim, mid_dim, time_emb_dim=time_dim)
        self.mid_attn = Residual(PreNorm(mid_dim, attn(mid_dim)))
        self.mid_block2 = block_klass(mid_dim, mid_dim, time_emb_dim=time_dim)
        for ind, (dim_in, dim_out) in enumerate(reversed(in_out)):
            is_last = ind == (len(in_out) - 1)
            self.ups.append(nn.ModuleList([
                block_klass(dim_out + dim_in, dim_out, time_emb_dim=time_dim),
                block_klass(dim_out + dim_in, dim_out, time_emb_dim=time_dim),
                Residual(PreNorm(dim_out, lin_attn(dim_out))),
                Upsample(dim_out, dim_in) if not is_last else nn.Conv2d(dim_out, dim_in, 3, padding=1),
            ]))
        self.out_dim = default(out_dim, channels)
        self.final_res_block = block_klass(dim * 2, dim, time_emb_dim=time_dim)
        self.final_conv = nn.Conv2d(dim, self.out_dim, 1)

    def forward(self, x, time, labels=None):
        x = self.init_conv(x)
        r = x.clone()
        t = self.time_mlp(time)
        if self.class_emb is not None and labels is not None:
            t = t + self.class_emb(labels)
        h = []
        for block1, block2, attn, downsample in self.downs:
            x = block1(x, t)
            h.append(x)
            x = block2(x, t)
            x = attn(x)
            h.append(x)
            x = downsample(x)
        x = self.mid_block1(x, t)
        x = self.mid_attn(x)
        x = self.mid_block2(x, t)
        for block1, block2, attn, upsample in self.ups:
            x = torch.cat((x, h.pop()), dim=1)
            x = block1(x, t)
            x = torch.cat((x, h.pop()), dim=1)
            x = block2(x, t)
            x = attn(x)
            x = upsample(x)
        x = torch.cat((x, r), dim=1)
        x = self.final_res_block(x, t)
        return self.final_conv(x)


# The blog's module paths → the Burn port's (enum variants such as `Resnet` are skipped on load).
RENAMES = [
    (r"^time_mlp\.1\.", "time_mlp.linear1."),
    (r"^time_mlp\.3\.", "time_mlp.linear2."),
    (r"^class_emb\.", "class_emb.table."),
    (r"^(downs|ups)\.(\d+)\.0\.", r"\1.\2.block1."),
    (r"^(downs|ups)\.(\d+)\.1\.", r"\1.\2.block2."),
    (r"^(downs|ups)\.(\d+)\.2\.fn\.norm\.", r"\1.\2.attn.norm."),
    (r"^(downs|ups)\.(\d+)\.2\.fn\.fn\.to_qkv\.", r"\1.\2.attn.inner.to_qkv."),
    (r"^(downs|ups)\.(\d+)\.2\.fn\.fn\.to_out\.0\.", r"\1.\2.attn.inner.to_out."),
    (r"^(downs|ups)\.(\d+)\.2\.fn\.fn\.to_out\.1\.", r"\1.\2.attn.inner.out_norm."),
    (r"^(downs|ups)\.(\d+)\.3\.1\.", r"\1.\2.resample."),
    (r"^(downs|ups)\.(\d+)\.3\.", r"\1.\2.resample."),
    (r"^mid_attn\.fn\.norm\.", "mid_attn.norm."),
    (r"^mid_attn\.fn\.fn\.", "mid_attn.inner."),
    (r"\.mlp\.1\.", ".mlp."),
    (r"\.proj\.", ".proj.conv."),
    (r"\.net\.0\.", ".norm1."),
    (r"\.net\.1\.", ".conv1."),
    (r"\.net\.3\.", ".norm2."),
    (r"\.net\.4\.", ".conv2."),
]


def burn_name(key):
    for pattern, repl in RENAMES:
        key = re.sub(pattern, repl, key)
    return key


def make(name, image_size, batch, seed, **kwargs):
    torch.manual_seed(seed)
    model = Unet(**kwargs).eval()
    with torch.no_grad():
        # Non-trivial norms, so a missing affine transform would show.
        for m in model.modules():
            if isinstance(m, nn.GroupNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
        x = torch.randn(batch, kwargs["channels"], image_size, image_size)
        t = torch.tensor([float((997 * i + 13) % 1000) for i in range(batch)])
        labels = None
        if kwargs.get("num_classes"):
            labels = torch.tensor([i % (kwargs["num_classes"] + 1) for i in range(batch)])
        y = model(x, t, labels)
    tensors = {burn_name(k): v.contiguous() for k, v in model.state_dict().items()}
    tensors["input.x"] = x.contiguous()
    tensors["input.t"] = t.contiguous()
    tensors["output.eps"] = y.contiguous()
    if labels is not None:
        tensors["input.labels"] = labels.to(torch.int64).contiguous()
    save_file(tensors, OUT / f"unet_{name}.safetensors")
    params = sum(p.numel() for p in model.parameters())
    meta = {"params": params, "image_size": image_size, **{k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()}}
    (OUT / f"unet_{name}.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(name, params, "parameters")


def blog_param_count():
    """The blog's own configuration: Unet(dim=28, channels=1, dim_mults=(1, 2, 4))."""
    model = Unet(dim=28, channels=1, dim_mults=(1, 2, 4))
    count = sum(p.numel() for p in model.parameters())
    (OUT / "unet_blog_params.json").write_text(json.dumps({"params": count}) + "\n")
    print("blog", count, "parameters")


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    torch.set_default_dtype(torch.float32)
    blog_param_count()
    make("resnet", image_size=16, batch=3, seed=1, dim=8, channels=1, dim_mults=(1, 2, 4),
         heads=2, dim_head=8, num_classes=10)
    make("convnext", image_size=8, batch=2, seed=2, dim=8, channels=1, dim_mults=(1, 2),
         use_convnext=True, heads=2, dim_head=8)

"""A plain PyTorch Vision Transformer with exactly timm's parameter names and
semantics (pre-norm blocks, fused qkv, LayerNorm eps 1e-6, exact erf GELU,
class-token pooling), so state dicts move between timm, sotu and this module
unchanged. No timm import: the installed torch 1.13 is enough.

    from torch_vit import build_vit
    model = build_vit(image_size=28, channels=1, patch=4, dim=96, depth=6,
                      heads=3, mlp_hidden=384, classes=10)
    model.load_state_dict({k: torch.from_numpy(v[()]) for k, v in h5["merged"].items()})
"""
import torch
from torch import nn


class PatchEmbed(nn.Module):
    def __init__(self, image_size, patch, channels, dim):
        super().__init__()
        self.num_patches = (image_size // patch) ** 2
        self.proj = nn.Conv2d(channels, dim, kernel_size=patch, stride=patch)

    def forward(self, x):  # [B, C, S, S] -> [B, N, D]
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, T, D = x.shape
        qkv = self.qkv(x).reshape(B, T, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, T, D)
        return self.proj(x)


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, heads, mlp_hidden):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, mlp_hidden)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    def __init__(self, image_size, channels, patch, dim, depth, heads, mlp_hidden, classes):
        super().__init__()
        self.patch_embed = PatchEmbed(image_size, patch, channels, dim)
        n = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, n + 1, dim))
        self.blocks = nn.Sequential(*[Block(dim, heads, mlp_hidden) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, classes)
        self.init_weights()

    def init_weights(self):
        """timm's default (init_weights_vit_timm): trunc-normal(0.02) linears and
        pos_embed, normal(1e-6) cls_token, zero biases; the conv keeps torch's."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward_features(self, x):
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.blocks(x + self.pos_embed)
        return self.norm(x)[:, 0]

    def forward(self, x):
        return self.head(self.forward_features(x))


def build_vit(image_size, channels, patch, dim, depth, heads, mlp_hidden, classes):
    return VisionTransformer(image_size, channels, patch, dim, depth, heads, mlp_hidden, classes)

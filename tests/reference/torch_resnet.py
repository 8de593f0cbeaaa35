"""A plain PyTorch ResNet (BasicBlock: ResNet-18/34) with exactly
torchvision's parameter names and semantics, plus CLR's channel-wise
lightweight reprogramming layers, so state dicts move between torchvision,
sotu and this module unchanged. No torchvision import: torch 1.13 is enough.

CLR (Ge et al., ICCV 2023): a depthwise 3x3 convolution (groups = channels,
padding 1, no bias) after each convolution that is not 1x1 (clr="clr") or
after every convolution (clr="clr-full"), named <conv>.clr.weight.

    from torch_resnet import build_resnet
    model = build_resnet(depth=18, width=64, channels=3, classes=1000)
    model = build_resnet(depth=18, width=16, channels=1, classes=10,
                         small_input=True, clr="clr")
"""
import torch
from torch import nn


class Conv(nn.Conv2d):
    """nn.Conv2d without bias, optionally followed by its CLR layer (a child
    module, so the names are <conv>.weight and <conv>.clr.weight)."""

    def __init__(self, cin, cout, k, stride, pad, clr):
        super().__init__(cin, cout, k, stride=stride, padding=pad, bias=False)
        if clr:
            self.clr = nn.Conv2d(cout, cout, 3, padding=1, groups=cout, bias=False)
            with torch.no_grad():
                self.clr.weight.zero_()
                self.clr.weight[:, 0, 1, 1] = 1.0

    def forward(self, x):
        y = super().forward(x)
        return self.clr(y) if hasattr(self, "clr") else y


def conv(cin, cout, k, stride, clr_mode):
    clr = clr_mode == "clr-full" or (clr_mode == "clr" and k > 1)
    return Conv(cin, cout, k, stride, k // 2, clr)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride, clr):
        super().__init__()
        self.conv1 = conv(cin, cout, 3, stride, clr)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv(cout, cout, 3, 1, clr)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(conv(cin, cout, 1, stride, clr), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNet(nn.Module):
    def __init__(self, depth, width, channels, classes, small_input=False, clr="none"):
        super().__init__()
        blocks = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3]}[depth]
        if small_input:
            self.conv1 = Conv(channels, width, 3, 1, 1, clr != "none")
            self.maxpool = nn.Identity()
        else:
            self.conv1 = Conv(channels, width, 7, 2, 3, clr != "none")
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        cin = width
        for i, n in enumerate(blocks):
            cout = width << i
            layer = []
            for j in range(n):
                layer.append(BasicBlock(cin, cout, 2 if i > 0 and j == 0 else 1, clr))
                cin = cout
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def build_resnet(depth=18, width=64, channels=3, classes=1000, small_input=False, clr="none"):
    return ResNet(depth, width, channels, classes, small_input, clr)


def clr_trainable(name):
    """CLR's per-task set: CLR weights, BatchNorm affine, fc."""
    return (name.endswith(".clr.weight") or ".bn" in name or name.startswith("bn1.")
            or ".downsample.1." in name or name.startswith("fc."))

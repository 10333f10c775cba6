"""The lecture's layer shapes, the benchmark's workload (see issue: core, list of shapes)."""
from dataclasses import dataclass


@dataclass(frozen=True)
class Layer:
    name: str
    batch: int
    h: int
    w: int
    c: int
    o: int
    k: int = 3
    padding: str = "same"
    groups: int = 1

    @property
    def flops(self):
        """2 x multiply-adds of the direct convolution (stride 1)."""
        oh = self.h if self.padding == "same" else self.h - self.k + 1
        ow = self.w if self.padding == "same" else self.w - self.k + 1
        return 2 * self.batch * oh * ow * self.o * self.k * self.k * self.c // self.groups


CONV_LAYERS = [
    Layer("mnist1 28x28x1->32 valid", 512, 28, 28, 1, 32, padding="valid"),
    Layer("mnist2 13x13x32->64", 512, 13, 13, 32, 64),
    Layer("mnist3 6x6x64->128", 512, 6, 6, 64, 128),
    Layer("mnist4 3x3x128->256", 512, 3, 3, 128, 256),
    Layer("mnist5 3x3x256->512", 512, 3, 3, 256, 512),
    Layer("cifar1 32x32x3->64 valid", 128, 32, 32, 3, 64, padding="valid"),
    Layer("cifar2 30x30x64->64 valid", 128, 30, 30, 64, 64, padding="valid"),
    Layer("cifar3 14x14x64->128", 128, 14, 14, 64, 128),
    Layer("cifar4 14x14x128->128", 128, 14, 14, 128, 128),
    Layer("cifar5 7x7x128->256", 128, 7, 7, 128, 256),
    Layer("cifar6 7x7x256->256", 128, 7, 7, 256, 256),
    Layer("inception 1x1 28x28x192->16", 32, 28, 28, 192, 16, k=1, padding="valid"),
    Layer("xception depthwise 19x19x728", 8, 19, 19, 728, 728, groups=728),
    Layer("resnext grouped32 56x56x128", 32, 56, 56, 128, 128, groups=32),
]

POOL_LAYERS = [Layer("maxpool 2x2 26x26x32", 512, 26, 26, 32, 32, k=2, padding="valid")]

"""SRResNet and the SRGAN discriminator (Ledig, Theis, Huszár, Caballero, Cunningham, Acosta, Aitken, Tejani,
Totz, Wang and Shi, "Photo-Realistic Single Image Super-Resolution Using a Generative Adversarial Network",
CVPR 2017).
"""

from __future__ import annotations

from torch import Tensor, nn


class ResidualBlockBN(nn.Module):
    """SRResNet's residual block: ``x + bn2(conv2(prelu(bn1(conv1(x)))))``, 3x3 convolutions, same shape."""

    def __init__(self, num_feat: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.bn1 = nn.BatchNorm2d(num_feat)
        self.prelu = nn.PReLU()
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(num_feat)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.bn2(self.conv2(self.prelu(self.bn1(self.conv1(x)))))


class SRResNet(nn.Module):
    """SRResNet (the SRGAN generator): Conv 9x9 + PReLU -> ``num_block`` residual blocks with batch norm ->
    Conv 3x3 + BN, plus the long skip from the first conv -> sub-pixel stages (Conv 3x3 to ``4*num_feat``,
    PixelShuffle(2), PReLU) -> Conv 9x9.

    ``(N, num_in_ch, H, W) -> (N, num_out_ch, s*H, s*W)``. The paper's x4 model has two x2 stages; x2 uses
    one, and x3 (our extension) one stage of Conv 3x3 to ``9*num_feat`` + PixelShuffle(3). The paper maps the
    generator output to [-1, 1]; here input and output are both [0, 1] (no final activation). Parameter
    counts (64 features, 16 blocks, one PReLU slope per activation): 1,549,462 at x4; the EDSR paper's Table
    1 lists SRResNet at 1.5M. Batch norm makes an eval-mode model independent of the batch; train it with
    batches larger than 1.
    """

    def __init__(self, scale: int = 4, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64,
                 num_block: int = 16) -> None:
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f"SRResNet supports scales 2, 3 and 4, not {scale}")
        self.scale = scale
        self.num_in_ch = num_in_ch
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 9, 1, 4)
        self.prelu_first = nn.PReLU()
        self.body = nn.Sequential(*(ResidualBlockBN(num_feat) for _ in range(num_block)))
        self.conv_after_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.bn_after_body = nn.BatchNorm2d(num_feat)
        stages = [3] if scale == 3 else [2] * (scale // 2)
        layers: list[nn.Module] = []
        for s in stages:
            layers += [nn.Conv2d(num_feat, num_feat * s * s, 3, 1, 1), nn.PixelShuffle(s), nn.PReLU()]
        self.upsample = nn.Sequential(*layers)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 9, 1, 4)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.num_in_ch:
            raise ValueError(f"SRResNet expects (N, {self.num_in_ch}, H, W); got {tuple(x.shape)}")
        feat = self.prelu_first(self.conv_first(x))
        feat = feat + self.bn_after_body(self.conv_after_body(self.body(feat)))
        return self.conv_last(self.upsample(feat))


class SRGANDiscriminator(nn.Module):
    """SRGAN's discriminator: Conv 3x3 (64) + LeakyReLU 0.2, then seven Conv 3x3 + BN + LeakyReLU with
    64, 128, 128, 256, 256, 512, 512 filters and strides 2, 1, 2, 1, 2, 1, 2 (the spatial size shrinks 16x),
    then Dense(1024) + LeakyReLU and Dense(1).

    ``(N, num_in_ch, S, S) -> (N, 1)`` raw logits: the paper's final sigmoid is left to the loss
    (``BCEWithLogits``). The paper trains on 96x96 HR crops (``input_size=96``, the default); any multiple of
    16 works, e.g. 128 for the ESRGAN-style 128x128 crops. At S=96 with 64 base filters: 23,563,649
    parameters, almost all in the first dense layer (512*6*6*1024).
    """

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, input_size: int = 96) -> None:
        super().__init__()
        if input_size % 16:
            raise ValueError(f"SRGANDiscriminator needs an input size divisible by 16, not {input_size}")
        self.input_size = input_size
        self.num_in_ch = num_in_ch
        chans = [num_feat, num_feat, num_feat * 2, num_feat * 2, num_feat * 4, num_feat * 4, num_feat * 8,
                 num_feat * 8]
        layers: list[nn.Module] = [nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True)]
        for i in range(1, len(chans)):
            stride = 2 if i % 2 else 1
            layers += [nn.Conv2d(chans[i - 1], chans[i], 3, stride, 1, bias=False), nn.BatchNorm2d(chans[i]),
                       nn.LeakyReLU(0.2, inplace=True)]
        self.features = nn.Sequential(*layers)
        side = input_size // 16
        self.classifier = nn.Sequential(nn.Linear(chans[-1] * side * side, 1024),
                                        nn.LeakyReLU(0.2, inplace=True), nn.Linear(1024, 1))

    def forward(self, x: Tensor) -> Tensor:
        size = self.input_size
        if x.dim() != 4 or x.shape[1] != self.num_in_ch or tuple(x.shape[-2:]) != (size, size):
            raise ValueError(f"SRGANDiscriminator expects (N, {self.num_in_ch}, {size}, {size}); "
                             f"got {tuple(x.shape)}")
        return self.classifier(self.features(x).flatten(1))

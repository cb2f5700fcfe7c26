"""Networks for the denoiser: a time-conditioned U-Net (any ``nn.Module`` with ``forward(x, t)`` works)."""

from .unet import UNet, UNetConfig

__all__ = ["UNet", "UNetConfig"]

"""Networks for the denoiser: a registry of them, with a time-conditioned U-Net built in.

Any ``nn.Module`` with ``forward(x, t)`` works with ``train(net=...)``; a registered one
(:func:`register_network`) is also named by run configs and the CLI.
"""

from .networks import DEFAULT_NETWORK, NETWORKS, Network, register_network
from .unet import UNet, UNetConfig

__all__ = ["UNet", "UNetConfig", "NETWORKS", "Network", "register_network", "DEFAULT_NETWORK"]

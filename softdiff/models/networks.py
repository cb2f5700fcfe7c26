"""The network registry: a run's ``network`` names an entry, its ``model`` section holds the entry's ``Params``.

An entry builds an ``nn.Module`` called as ``net(x, t)`` from its validated settings. The
run fills in the data's shape through the settings' ``in_channels`` and ``image_size``
fields when the entry declares them (the U-Net does), so a plugin network
(:func:`register_network`, in a module the run names in ``plugins``) is sized like the
built-in one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel
from torch import nn

from ..registry import Registry
from .unet import UNet, UNetConfig

__all__ = ["Network", "NETWORKS", "register_network", "DEFAULT_NETWORK"]

DEFAULT_NETWORK = "unet"


@dataclass(frozen=True)
class Network:
    """A registered network: ``build(params) -> nn.Module`` with ``params`` an instance of ``Params``."""

    description: str
    build: Callable[[BaseModel], nn.Module]
    Params: type[BaseModel]


NETWORKS: Registry[Network] = Registry("network")


def register_network(name: str, network: Network, *, replace: bool = False) -> None:
    """Register a network by name (then ``network = name`` in a run config selects it)."""
    if not isinstance(network, Network):
        raise ValueError(f"a network entry is a Network(description, build, Params), got {type(network).__name__}")
    NETWORKS.register(name, network, replace=replace)


register_network(DEFAULT_NETWORK, Network("time-conditioned U-Net", UNet, UNetConfig))  # type: ignore[arg-type]

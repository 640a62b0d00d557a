"""The explicit registry of configured channel providers: registered by name, looked up by name or channel."""

from __future__ import annotations

from collections.abc import Iterable

from herald.channels.base import Channel, ChannelProvider
from herald.core.errors import ConflictError, NotFoundError


class DuplicateProviderError(ConflictError):
    code = "duplicate_provider"


class UnknownProviderError(NotFoundError):
    code = "unknown_provider"


class ChannelRegistry:
    """Providers the composition root registered, in registration order (the default failover order)."""

    def __init__(self, providers: Iterable[ChannelProvider] = ()) -> None:
        self._by_name: dict[str, ChannelProvider] = {}
        for provider in providers:
            self.register(provider)

    def register(self, provider: ChannelProvider) -> None:
        if provider.name in self._by_name:
            raise DuplicateProviderError(
                f"A provider named {provider.name!r} is already registered.", name=provider.name
            )
        self._by_name[provider.name] = provider

    def get(self, name: str) -> ChannelProvider:
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownProviderError(f"No provider named {name!r} is registered.", name=name) from None

    def for_channel(self, channel: Channel) -> tuple[ChannelProvider, ...]:
        return tuple(p for p in self._by_name.values() if p.channel == channel)

    def names(self) -> tuple[str, ...]:
        return tuple(self._by_name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __len__(self) -> int:
        return len(self._by_name)

"""Channel adapters behind the ChannelProvider port; only the delivery slice calls them."""

"""The gateway: REST + gRPC + web page over one async colourisation service."""

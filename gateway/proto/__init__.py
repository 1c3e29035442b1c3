"""Python code generated from protos/colorizer/v1/colorizer.proto (``make proto`` regenerates it)."""

from gateway.proto import colorizer_pb2, colorizer_pb2_grpc

__all__ = ["colorizer_pb2", "colorizer_pb2_grpc"]

"""Example gRPC client: list the models, colourise a photo with one model, then stream every model's result.

Run: python examples/grpc_client.py photo.jpg --out colourised/ [--model ID] [--address 127.0.0.1:50051]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import grpc

from gateway.proto import colorizer_pb2 as pb
from gateway.proto import colorizer_pb2_grpc as pb_grpc

MAX_MESSAGE = 64 * 1024 * 1024  # photos in and out: raise gRPC's 4 MiB default on the client too
EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", type=Path)
    parser.add_argument("--address", default="127.0.0.1:50051", help="the gateway's gRPC address")
    parser.add_argument("--model", help="model for the single-model call (default: the first ready one)")
    parser.add_argument("--out", type=Path, default=Path("colourised"))
    parser.add_argument("--reference", type=Path, help="a colour photo of the same scene (for 'exemplar')")
    parser.add_argument("--api-key", default=os.environ.get("GATEWAY_API_KEY"), help="when the gateway needs one")
    args = parser.parse_args()

    metadata = [("authorization", f"Bearer {args.api_key}")] if args.api_key else []
    options = [("grpc.max_send_message_length", MAX_MESSAGE), ("grpc.max_receive_message_length", MAX_MESSAGE)]
    data = args.image.read_bytes()
    reference = args.reference.read_bytes() if args.reference else b""
    args.out.mkdir(parents=True, exist_ok=True)

    with grpc.insecure_channel(args.address, options=options) as channel:
        stub = pb_grpc.ColorizerStub(channel)

        models = stub.ListModels(pb.ListModelsRequest(), metadata=metadata, timeout=10).models
        for m in models:
            print(f"{m.id:24} {m.family:10} {m.provenance:10} {'ready' if m.ready else 'not ready: ' + m.reason}")
        usable = [m for m in models if m.ready and (reference or not m.needs_reference)]
        model = args.model or (usable[0].id if usable else models[0].id)

        try:
            request = pb.ColorizeRequest(image=data, filename=args.image.name, model=model, reference=reference)
            reply = stub.Colorize(request, metadata=metadata, timeout=120)
        except grpc.RpcError as error:
            raise SystemExit(f"{model}: {error.code().name}: {error.details()}") from None
        path = args.out / f"{args.image.stem}.{model}.{EXTENSIONS[reply.media_type]}"
        path.write_bytes(reply.image)
        print(f"\n{model}: {reply.width}x{reply.height} in {reply.latency_ms:.0f} ms -> {path}")

        print("\nall models, as each finishes:")
        request_all = pb.ColorizeAllRequest(image=data, filename=args.image.name, reference=reference)
        for result in stub.ColorizeAll(request_all, metadata=metadata, timeout=300):
            if result.status != pb.MODEL_STATUS_OK:
                status = pb.ModelStatus.Name(result.status)
                print(f"  {result.model:24} {status}: {result.error.code}: {result.error.message}")
                continue
            path = args.out / f"{args.image.stem}.{result.model}.{EXTENSIONS[result.media_type]}"
            path.write_bytes(result.image)
            print(f"  {result.model:24} {result.latency_ms:7.0f} ms -> {path}")


if __name__ == "__main__":
    main()

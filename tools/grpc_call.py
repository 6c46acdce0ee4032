#!/usr/bin/python3
"""A generic command-line gRPC client for adak-serve (grpcurl-like, from Debian packages only).

Compiles the repo's proto/ with protoc (Debian: protobuf-compiler) into a temporary directory, then calls
one method with a JSON request (through grpc's generic channel API) and prints
each response message as one line of JSON (one line per stream message for GenerateStream).

    /usr/bin/python3 tools/grpc_call.py [--target 127.0.0.1:50051] SERVICE/METHOD 'JSON'
    /usr/bin/python3 tools/grpc_call.py adak.v1.Generation/GenerateStream \
        '{"text": "Once upon a time", "max_tokens": 32, "sampling": {"temperature": 0}}'
    /usr/bin/python3 tools/grpc_call.py grpc.health.v1.Health/Check '{"service": "adak.v1.Generation"}'

Needs python3-grpcio and python3-protobuf (Debian). Exit status: 0 on OK, 1 with the gRPC status on stderr.
"""
import argparse
import importlib
import importlib.util
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROTO_ROOT = os.path.join(ROOT, "proto")
PROTOS = {"adak.v1": "adak/v1/generation.proto", "grpc.health.v1": "grpc/health/v1/health.proto"}


def compile_protos(out_dir):
    cmd = ["protoc", "-I", PROTO_ROOT, f"--python_out={out_dir}"] + list(PROTOS.values())
    subprocess.run(cmd, check=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", default="127.0.0.1:50051")
    parser.add_argument("--timeout", type=float, default=60.0, help="deadline in seconds")
    parser.add_argument("method", help="SERVICE/METHOD, e.g. adak.v1.Generation/Generate")
    parser.add_argument("request", nargs="?", default="{}", help="the request as JSON")
    args = parser.parse_args()

    import grpc
    from google.protobuf import json_format

    service, _, method = args.method.partition("/")
    package = service.rsplit(".", 1)[0]
    if package not in PROTOS or not method:
        sys.exit(f"grpc_call: unknown method {args.method!r} (services: adak.v1.Generation, grpc.health.v1.Health)")
    with tempfile.TemporaryDirectory() as out_dir:
        compile_protos(out_dir)
        # Loaded by file path under a private name: grpc/health/v1 would collide with the grpc package.
        path = os.path.join(out_dir, PROTOS[package][:-len(".proto")] + "_pb2.py")
        spec = importlib.util.spec_from_file_location("_adak_call_pb2", path)
        pb2 = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(pb2)
    descriptor = pb2.DESCRIPTOR.services_by_name[service.rsplit(".", 1)[1]].methods_by_name.get(method)
    if descriptor is None:
        sys.exit(f"grpc_call: {service} has no method {method!r}")
    request_type = getattr(pb2, descriptor.input_type.name)
    response_type = getattr(pb2, descriptor.output_type.name)
    request = json_format.Parse(args.request, request_type())
    channel = grpc.insecure_channel(args.target)
    factory = channel.unary_stream if descriptor.server_streaming else channel.unary_unary
    call = factory(f"/{service}/{method}", request_serializer=request_type.SerializeToString,
                   response_deserializer=response_type.FromString)
    try:
        responses = call(request, timeout=args.timeout)
        if not descriptor.server_streaming:
            responses = [responses]
        for response in responses:
            print(json_format.MessageToJson(response, indent=None, preserving_proto_field_name=True), flush=True)
    except grpc.RpcError as error:
        print(f"grpc_call: {error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

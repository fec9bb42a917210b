# Triton with the project's model repository baked in (tinylm, echo). The same image runs on a
# GPU host (compose profile `gpu`) and on CPU only (profile `cpu`); the models are numpy.
#   docker build -f deploy/docker/triton.Dockerfile -t llmfleet-triton .
FROM nvcr.io/nvidia/tritonserver:24.10-py3

RUN pip install --no-cache-dir numpy==1.26.4
COPY deploy/triton/models /models

# Relative speed 1.0: no GPU emulation slow-down (that is for the local stack's profiles only).
ENV LLMFLEET_GPU_SPEED=1.0
EXPOSE 8000 8001 8002
# Explicit model control and nothing loaded: the allocator loads what the scaler asks for.
CMD ["tritonserver", "--model-repository=/models", "--model-control-mode=explicit", \
     "--http-port=8000", "--grpc-port=8001", "--metrics-port=8002"]

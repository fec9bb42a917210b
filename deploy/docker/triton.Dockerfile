# Triton with the project's model repository baked in (tinylm, echo). The same image runs on a
# GPU host (compose profile `gpu`) and on CPU only (profile `cpu`); the models are numpy.
#   docker build -f deploy/docker/triton.Dockerfile -t llmfleet-triton .
FROM nvcr.io/nvidia/tritonserver:24.10-py3

RUN pip install --no-cache-dir numpy==1.26.4
COPY deploy/triton/models /models
# tinylm times its batches with the performance model (numpy only, and Python 3.10 like this
# image). The backend's Python ignores PYTHONPATH, so tinylm puts LLMFLEET_SOURCE_ROOT on sys.path.
COPY shared/__init__.py /opt/llmfleet/shared/__init__.py
COPY shared/performance /opt/llmfleet/shared/performance
ENV LLMFLEET_SOURCE_ROOT=/opt/llmfleet

# No emulated model: tinylm runs at the host's own speed. To stand for a GPU serving a bigger model
# (e.g. on a CPU-only host), run the container with LLMFLEET_GPU_TYPE=a100_80gb and
# LLMFLEET_EMULATED_MODEL=llama-2-7b: each batch then lasts what that model takes on that GPU.
EXPOSE 8000 8001 8002
# Explicit model control and nothing loaded: the allocator loads what the scaler asks for.
CMD ["tritonserver", "--model-repository=/models", "--model-control-mode=explicit", \
     "--http-port=8000", "--grpc-port=8001", "--metrics-port=8002"]

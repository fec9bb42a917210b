# Triton for the local Compose test, without nvcr.io: the tritonserver 2.51 binary and Python
# backend from the nvidia-pytriton wheel (PyPI), laid out where the official image keeps them
# (/opt/tritonserver/backends), so deploy/docker/triton.Dockerfile's command runs unchanged.
# CPU only; the models are numpy. Build from the repo root.
FROM llmfleet-python:3.11
RUN pip install --no-cache-dir numpy==1.26.4 \
 && pip install --no-cache-dir --no-deps --target /opt/pytriton nvidia-pytriton==0.7.0 \
 && mkdir -p /opt/tritonserver/backends/python \
 && cd /opt/pytriton/pytriton/tritonserver \
 && cp backends/python/libtriton_python.so backends/python/triton_python_backend_utils.py \
       python_backend_stubs/3.11/triton_python_backend_stub /opt/tritonserver/backends/python/ \
 && ln -s /opt/pytriton/pytriton/tritonserver/bin/tritonserver /usr/local/bin/tritonserver
# The wheel's shared libraries sit beside it, not on the loader's path.
ENV LD_LIBRARY_PATH=/opt/pytriton/nvidia_pytriton.libs:/opt/pytriton/pytriton/tritonserver/lib \
    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
COPY deploy/triton/models /models
COPY shared/__init__.py /opt/llmfleet/shared/__init__.py
COPY shared/performance /opt/llmfleet/shared/performance
ENV LLMFLEET_SOURCE_ROOT=/opt/llmfleet
EXPOSE 8000 8001 8002
CMD ["tritonserver", "--model-repository=/models", "--model-control-mode=explicit", \
     "--http-port=8000", "--grpc-port=8001", "--metrics-port=8002"]

#!/bin/sh
# SpeechFunction's handler: the AWS Lambda Web Adapter's exec wrapper
# (AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap) runs this instead of the Python runtime's own
# bootstrap, so the paths that bootstrap would set come here: the shared layer (/opt/python)
# and the runtime's directory (LAMBDA_RUNTIME_DIR, where boto3 is).  The script's own
# directory (LAMBDA_TASK_ROOT) comes first anyway.  -u: log lines and EMF metrics unbuffered.
# The app listens on 127.0.0.1:$AWS_LWA_PORT.
export PYTHONPATH="/opt/python:${LAMBDA_RUNTIME_DIR:-/var/runtime}${PYTHONPATH:+:$PYTHONPATH}"
exec python3 -u "${LAMBDA_TASK_ROOT:-.}/app.py"

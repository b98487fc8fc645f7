#!/bin/sh
# Prints the greeting baked into the image.
cat "${GREETING_FILE:-/etc/hello/message.txt}"
cat /usr/local/bin/build-info

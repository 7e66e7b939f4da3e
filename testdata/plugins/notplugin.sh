#!/bin/sh
echo "I am a shell script, not a gateway plugin"

# pretix-plugin, build-only stage: download or build, as wheels, exactly what `pip3 install`
# would add to the base image, so the image's own stage installs them with --no-index and never
# needs this stage's CA bundle (PIP_CERT).
import json
import os
import subprocess
import sys

WHEELS = "/tmp/pretix-toolkit-wheels"
REPORT = "/tmp/pretix-toolkit-report.json"

os.makedirs(WHEELS, exist_ok=True)
subprocess.run(
    ["pip3", "install", "--no-cache-dir", "--dry-run", "--quiet", "--report", REPORT, *sys.argv[1:]],
    check=True,
)
with open(REPORT, encoding="utf-8") as report_file:
    report = json.load(report_file)
urls = [item["download_info"]["url"] for item in report.get("install", [])]
for url in urls:
    print("pretix-plugin: fetching " + url, flush=True)
if urls:
    subprocess.run(["pip3", "wheel", "--no-cache-dir", "--no-deps", "--wheel-dir", WHEELS, *urls], check=True)

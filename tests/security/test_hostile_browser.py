"""A web page from another origin, opened in headless chromium, tries what the issue found a
page could do: run a shell through CreateProcessingJob, overwrite the pipeline's source dir
with a form POST, read an object. The runtime refuses each request; nothing changes."""

from __future__ import annotations

import re
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hostile_support import BUCKET, PLANTED_BODY, PLANTED_KEY
from playwright.sync_api import sync_playwright

pytestmark = pytest.mark.e2e
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update"]  # fmt: skip
ATTACK_PAGE = """<!doctype html><html><body>
<form id="upload" method="POST" enctype="multipart/form-data" action="{runtime}/{bucket}">
  <input name="key" value="{key}"><input type="file" name="file" id="file">
</form>
<script>
window.results = {{}};
const job = {{ProcessingJobName: "owned", RoleArn: "arn:aws:iam::123456789012:role/x",
  ProcessingResources: {{ClusterConfig: {{InstanceCount: 1, InstanceType: "ml.m5.large",
                                           VolumeSizeInGB: 1}}}},
  AppSpecification: {{ImageUri: "x",
                      ContainerEntrypoint: ["/bin/sh", "-c", "touch {marker}"]}}}};
async function attempt(name, url, options) {{
  try {{ const r = await fetch(url, options); window.results[name] = r.status; }}
  catch (e) {{ window.results[name] = "blocked: " + e; }}
}}
async function attack() {{
  await attempt("CreateProcessingJob", "{runtime}/", {{method: "POST", body: JSON.stringify(job),
    headers: {{"X-Amz-Target": "SageMaker.CreateProcessingJob",
               "Content-Type": "application/x-amz-json-1.1"}}}});
  await attempt("CreateProcessingJob as text/plain", "{runtime}/", {{method: "POST",
    mode: "no-cors", body: JSON.stringify(job), headers: {{"Content-Type": "text/plain"}}}});
  await attempt("GetObject", "{runtime}/{bucket}/{key}", {{}});
  await attempt("no-cors PUT", "{runtime}/{bucket}/{key}", {{method: "PUT", mode: "no-cors",
    body: "evil"}});
  const file = new File(["evil source"], "sourcedir.tar.gz");
  const transfer = new DataTransfer(); transfer.items.add(file);
  document.getElementById("file").files = transfer.files;
  window.done = true;
}}
attack();
</script></body></html>"""


@pytest.fixture
def attacker_site(runtime, tmp_path):
    """The attacker's page, served from another origin (another port on the same machine)."""
    marker = tmp_path / "shell-ran"
    page = ATTACK_PAGE.format(runtime=runtime.url, bucket=BUCKET, key=PLANTED_KEY, marker=marker)

    class Page(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(page.encode())

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", marker
    server.shutdown()


def test_a_page_from_another_origin_cannot_use_the_runtime(runtime, attacker_site, ledger):
    assert Path(CHROMIUM).exists(), "chromium is missing: `make browser` installs Debian's"
    url, marker = attacker_site
    log_before = len(runtime.log_text().splitlines())
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=CHROMIUM_ARGS)  # fmt: skip
        page = browser.new_page()
        page.goto(url)
        page.wait_for_function("window.done === true", timeout=30_000)
        results = page.evaluate("window.results")
        with page.expect_navigation() as navigation:
            page.evaluate("document.getElementById('upload').submit()")
        form_status = navigation.value.status if navigation.value else 0
        browser.close()

    assert results["CreateProcessingJob"].startswith("blocked")  # the preflight was refused
    assert results["GetObject"].startswith("blocked")  # no CORS header: the page reads nothing
    assert ledger.answered("browser form POST over the source dir", form_status) == 403
    seen = runtime.log_text().splitlines()[log_before:]
    statuses = [int(m[1]) for line in seen if (m := re.search(r" -> (\d{3}) \(", line))]
    for status in statuses[:-1]:  # the last line is the form POST, counted above
        ledger.answered("browser fetch from another origin", status)
    assert statuses and all(status == 403 for status in statuses), seen
    assert not marker.exists()
    sagemaker = runtime.client("sagemaker")
    assert sagemaker.list_processing_jobs()["ProcessingJobSummaries"] == []
    body = runtime.client("s3").get_object(Bucket=BUCKET, Key=PLANTED_KEY)["Body"].read()
    assert ledger.found("lost objects", int(body != PLANTED_BODY)) == 0

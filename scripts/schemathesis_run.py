"""Schemathesis against nova-all's own OpenAPI document.

    python scripts/schemathesis_run.py target/debug/nova-all \
        [--microversion latest] [--microversion 2.1] [--max-examples 8] [--seed 1] \
        [--include-path-regex 'servers/[{]id[}]/action$']

Starts nova-all (built-in identity, fake computes, a fresh state directory),
puts a public image and a flavor in it, and runs `schemathesis run` on
GET /v2.1/openapi.json?microversion=V for each microversion asked for, as an
admin, positive data only (every request the document allows), with the
checks: no 5xx (not_a_server_error), every status documented
(status_code_conformance), JSON where the document says so
(content_type_conformance) and every body valid against its schema
(response_schema_conformance). The exit status is schemathesis' (0: no
failure). Bounded by --max-examples per operation and --max-time per run.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def request(method, url, token=None, body=None, raw=None):
    h = {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h['Content-Type'] = 'application/json'
    if raw is not None:
        data = raw
        h['Content-Type'] = 'application/octet-stream'
    if token:
        h['X-Auth-Token'] = token
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    with urllib.request.urlopen(req, timeout=60) as r:
        text = r.read()
        return r.status, dict(r.headers), json.loads(text) if text else None


def start(binary, work):
    port, image_port = free_port(), free_port()
    conf = os.path.join(work, 'nova.conf')
    with open(conf, 'w') as f:
        f.write('[DEFAULT]\nhost = openapi\n[identity]\n'
                'users = admin:admin:admin:admin+member+reader, '
                'demo:demo:demo:member+reader\n')
    log = open(os.path.join(work, 'nova-all.log'), 'w')
    proc = subprocess.Popen(
        [binary, '--config', conf, '--state-dir', os.path.join(work, 'state'),
         '--port', str(port), '--image-port', str(image_port),
         '--fake-computes', '1'],
        stdout=log, stderr=subprocess.STDOUT)
    base = 'http://127.0.0.1:%d' % port
    for _ in range(600):
        try:
            urllib.request.urlopen(base + '/v2.1/', timeout=1)
            return proc, base, 'http://127.0.0.1:%d' % image_port
        except Exception:
            if proc.poll() is not None:
                raise RuntimeError('nova-all exited; see %s/nova-all.log' % work)
            time.sleep(0.1)
    proc.terminate()
    raise RuntimeError('nova-all did not answer in 60 s')


def token(base, user, project):
    body = {'auth': {'identity': {'methods': ['password'], 'password': {
        'user': {'name': user, 'domain': {'name': 'Default'}, 'password': user}}},
        'scope': {'project': {'name': project, 'domain': {'name': 'Default'}}}}}
    _, h, _ = request('POST', base + '/identity/v3/auth/tokens', body=body)
    return h.get('X-Subject-Token') or h.get('x-subject-token')


def provision(base, image_base, tok):
    _, _, img = request('POST', image_base + '/v2/images', tok, {
        'name': 'openapi-image', 'disk_format': 'raw',
        'container_format': 'bare', 'visibility': 'public'})
    request('PUT', image_base + '/v2/images/%s/file' % img['id'], tok,
            raw=os.urandom(4096))
    request('POST', base + '/v2.1/flavors', tok, {'flavor': {
        'name': 'openapi.tiny', 'id': 'openapi-1', 'ram': 64, 'vcpus': 1, 'disk': 1}})
    _, _, srv = request('POST', base + '/v2.1/servers', tok, {'server': {
        'name': 'openapi-server', 'flavorRef': 'openapi-1', 'imageRef': img['id']}})
    sid = srv['server']['id']
    for _ in range(300):
        _, _, s = request('GET', base + '/v2.1/servers/%s' % sid, tok)
        if s['server']['status'] in ('ACTIVE', 'ERROR'):
            break
        time.sleep(0.1)
    return sid


def config(work, server_id):
    """A schemathesis.toml giving the operations on one server or flavor
    real ids (else nearly all of them answer 404)."""
    path = os.path.join(work, 'schemathesis.toml')
    with open(path, 'w') as f:
        for regex, value in (('servers/[{]id[}]', server_id),
                             ('flavors/[{]id[}]', 'openapi-1')):
            f.write('[[operations]]\ninclude-path-regex = "%s"\n'
                    'parameters = { "path.id" = "%s" }\n\n' % (regex, value))
    return path


def main():
    p = argparse.ArgumentParser()
    p.add_argument('binary')
    p.add_argument('--microversion', action='append')
    p.add_argument('--max-examples', type=int, default=8)
    p.add_argument('--max-time', type=int, default=120,
                   help='seconds per microversion')
    p.add_argument('--seed', type=int, default=1)
    p.add_argument('--keep', action='store_true', help='keep the work directory')
    p.add_argument('--include-path-regex',
                   help="only the operations whose path matches (schemathesis' filter)")
    a = p.parse_args()
    versions = a.microversion or ['latest']
    schemathesis = os.path.join(os.path.dirname(sys.executable), 'schemathesis')
    if not os.path.exists(schemathesis):
        sys.exit('schemathesis is not installed in %s (scripts/test installs it)'
                 % os.path.dirname(sys.executable))
    work = tempfile.mkdtemp(prefix='openapi-schemathesis-')
    proc, base, image_base = start(os.path.abspath(a.binary), work)
    status = 0
    try:
        tok = token(base, 'admin', 'admin')
        server_id = provision(base, image_base, tok)
        conf = config(work, server_id)
        for v in versions:
            started = time.time()
            cmd = [schemathesis, '--config-file', conf, 'run',
                   '%s/v2.1/openapi.json?microversion=%s' % (base, v),
                   '--checks', 'not_a_server_error,status_code_conformance,'
                   'content_type_conformance,response_schema_conformance',
                   '--mode', 'positive', '--phases', 'examples,fuzzing',
                   '--max-examples', str(a.max_examples),
                   '--max-time', str(a.max_time),
                   '--seed', str(a.seed), '--workers', '1',
                   '--request-timeout', '30',
                   '--suppress-health-check', 'all',
                   '--continue-on-failure',
                   '-H', 'X-Auth-Token: %s' % tok]
            if a.include_path_regex:
                cmd += ['--include-path-regex', a.include_path_regex]
            print('==> schemathesis at microversion %s' % v, flush=True)
            rc = subprocess.call(cmd, cwd=work)
            print('==> microversion %s: exit %d in %.0f s'
                  % (v, rc, time.time() - started), flush=True)
            status = status or rc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        if status:
            print('nova-all log: %s/nova-all.log' % work)
        elif not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    return status


if __name__ == '__main__':
    sys.exit(main())

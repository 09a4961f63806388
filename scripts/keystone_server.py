"""A real OpenStack Keystone (PyPI keystone, in the test virtualenv) on
SQLite with Fernet tokens, served by wsgiref: the identity service the
services' `[keystone_authtoken]` / `[placement]` / `[service_user]`
options are tested against. Self-contained: any test (nova-api,
nova-placement-api, tempest with dynamic credentials) can start one.

usage: python keystone_server.py DIR [--port N]
           [--user NAME:PASSWORD:PROJECT:ROLE[+ROLE...]]...
           [--endpoint TYPE=URL]...

Creates DIR/keystone.conf, DIR/keystone.db and the key repositories,
runs keystone-manage db_sync / fernet_setup / credential_setup /
bootstrap (user `admin`, password `admin`, project `admin`, role `admin`,
region `RegionOne`, identity endpoints at this server), then over
Keystone's own API creates each --user (its project and roles as
needed, all in domain `Default`) and each --endpoint (a service of that
type, its public, internal and admin endpoints at URL). Then prints
`listening http://127.0.0.1:PORT` (PORT 0 or none: a free one) and
serves until killed.
"""
import argparse
import getpass
import grp
import json
import os
import socket
import socketserver
import subprocess
import sys
import threading
import urllib.request
from wsgiref import simple_server


def manage(conf, *args):
    exe = os.path.join(os.path.dirname(sys.executable), 'keystone-manage')
    subprocess.run([exe, '--config-file', conf] + list(args), check=True,
                   stdout=subprocess.DEVNULL)


def api(base, method, path, token=None, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header('Content-Type', 'application/json')
    if token:
        req.add_header('X-Auth-Token', token)
    with urllib.request.urlopen(req) as r:
        doc = json.loads(r.read() or b'null')
        return doc, r.headers.get('X-Subject-Token')


def admin_token(base):
    _, token = api(base, 'POST', '/v3/auth/tokens', body={'auth': {
        'identity': {'methods': ['password'], 'password': {'user': {
            'name': 'admin', 'password': 'admin',
            'domain': {'id': 'default'}}}},
        'scope': {'project': {'name': 'admin',
                              'domain': {'id': 'default'}}}}})
    return token


def find(base, token, kind, name):
    doc, _ = api(base, 'GET', '/v3/%s?name=%s' % (kind, name), token)
    items = doc[kind]
    return items[0]['id'] if items else None


def ensure(base, token, kind, one, body):
    found = find(base, token, kind, body['name'])
    if found:
        return found
    doc, _ = api(base, 'POST', '/v3/' + kind, token, {one: body})
    return doc[one]['id']


def create_user(base, token, spec):
    name, password, project, roles = spec.split(':', 3)
    pid = ensure(base, token, 'projects', 'project',
                 {'name': project, 'domain_id': 'default'})
    uid = ensure(base, token, 'users', 'user',
                 {'name': name, 'password': password,
                  'domain_id': 'default', 'default_project_id': pid})
    for role in roles.split('+'):
        rid = ensure(base, token, 'roles', 'role', {'name': role})
        api(base, 'PUT', '/v3/projects/%s/users/%s/roles/%s'
            % (pid, uid, rid), token)


def create_endpoint(base, token, spec):
    kind, url = spec.split('=', 1)
    doc, _ = api(base, 'POST', '/v3/services', token,
                 {'service': {'type': kind, 'name': kind}})
    sid = doc['service']['id']
    for iface in ('public', 'internal', 'admin'):
        api(base, 'POST', '/v3/endpoints', token, {'endpoint': {
            'service_id': sid, 'interface': iface, 'url': url,
            'region_id': 'RegionOne'}})


def main():
    p = argparse.ArgumentParser()
    p.add_argument('dir')
    p.add_argument('--port', type=int, default=0)
    p.add_argument('--user', action='append', default=[])
    p.add_argument('--endpoint', action='append', default=[])
    a = p.parse_args()
    d = os.path.abspath(a.dir)
    os.makedirs(d, exist_ok=True)
    sock = socket.socket()
    sock.bind(('127.0.0.1', a.port))
    port = sock.getsockname()[1]
    sock.close()
    base = 'http://127.0.0.1:%d' % port
    conf = os.path.join(d, 'keystone.conf')
    with open(conf, 'w') as f:
        f.write('[DEFAULT]\nlog_file = %s/keystone.log\n'
                '[database]\nconnection = sqlite:///%s/keystone.db\n'
                '[token]\nprovider = fernet\nexpiration = 3600\n'
                '[fernet_tokens]\nkey_repository = %s/fernet-keys\n'
                '[fernet_receipts]\nkey_repository = %s/fernet-receipts\n'
                '[credential]\nkey_repository = %s/credential-keys\n'
                # bcrypt's minimum cost: a test server, not a vault.
                '[identity]\npassword_hash_rounds = 4\n'
                # Keystone's own in-process cache (token validations,
                # role assignments, catalog): without it every validation
                # recomputes the token's roles from SQLite.
                '[cache]\nenabled = true\n'
                'backend = dogpile.cache.memory\n'
                % (d, d, d, d, d))
    user = getpass.getuser()
    group = grp.getgrgid(os.getgid()).gr_name
    manage(conf, 'db_sync')
    for what in ('fernet_setup', 'credential_setup'):
        manage(conf, what, '--keystone-user', user, '--keystone-group', group)
    manage(conf, 'bootstrap', '--bootstrap-password', 'admin',
           '--bootstrap-region-id', 'RegionOne',
           '--bootstrap-admin-url', base + '/v3',
           '--bootstrap-internal-url', base + '/v3',
           '--bootstrap-public-url', base + '/v3')

    os.environ['OS_KEYSTONE_CONFIG_FILES'] = conf
    # keystone's oslo.config reads sys.argv: ours are not its options.
    sys.argv = sys.argv[:1]
    from keystone.server import wsgi
    keystone_app = wsgi.initialize_public_application()
    one_at_a_time = threading.Lock()

    # SQLite takes one writer at a time: requests are answered one after
    # the other (concurrent token issues and user creations, e.g. tempest's
    # dynamic credentials, otherwise fail with "database is locked").
    def app(environ, start_response):
        with one_at_a_time:
            return list(keystone_app(environ, start_response))

    class Server(socketserver.ThreadingMixIn, simple_server.WSGIServer):
        daemon_threads = True
        allow_reuse_address = True

    class Quiet(simple_server.WSGIRequestHandler):
        def log_message(self, *args):
            pass

    httpd = simple_server.make_server('127.0.0.1', port, app,
                                      server_class=Server,
                                      handler_class=Quiet)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    token = admin_token(base)
    for spec in a.user:
        create_user(base, token, spec)
    for spec in a.endpoint:
        create_endpoint(base, token, spec)
    print('listening', base, flush=True)
    threading.Event().wait()


if __name__ == '__main__':
    main()

"""Real OpenStack Keystone 30 (PyPI keystone) on SQLite with fernet tokens,
served by wsgiref: the identity service nova-api's `[keystone_authtoken]`
is tested against.

usage: python keystone_py_server.py DIR PORT [TYPE=URL ...]
(creates DIR/keystone.conf, DIR/keystone.db and the fernet key
repositories, syncs the schema, bootstraps admin/admin in project admin,
the roles admin > manager > member > reader and service, the region
RegionOne and the identity endpoint; then creates project `service` with
user `nova` (password `nova`, role service), project `demo` with users
`demo` (member) and `viewer` (reader), project `alt` with `alt` (member),
and a public endpoint for each TYPE=URL (`compute=http://...`); serves
127.0.0.1:PORT until killed. Prints `listening` once it answers.)
"""
import os
import socketserver
import subprocess
import sys
from wsgiref import simple_server

NAMES = {'compute': 'nova', 'image': 'glance', 'placement': 'placement'}


def manage(conf, *args):
    exe = os.path.join(os.path.dirname(sys.executable), 'keystone-manage')
    subprocess.run([exe, '--config-file', conf] + list(args), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def provision(url, endpoints):
    from keystoneauth1 import session
    from keystoneauth1.identity import v3
    from keystoneclient.v3 import client
    auth = v3.Password(auth_url=url + '/v3', username='admin',
                       password='admin', project_name='admin',
                       user_domain_id='default', project_domain_id='default')
    ks = client.Client(session=session.Session(auth=auth))
    roles = {r.name: r for r in ks.roles.list()}
    for name in ('service', 'manager'):
        if name not in roles:
            roles[name] = ks.roles.create(name)

    def project_with(pname, users):
        p = ks.projects.create(pname, 'default')
        for uname, role in users:
            u = ks.users.create(uname, domain='default', password=uname)
            ks.roles.grant(roles[role], user=u, project=p)

    project_with('service', [('nova', 'service')])
    project_with('demo', [('demo', 'member'), ('viewer', 'reader'),
                          ('boss', 'manager')])
    project_with('alt', [('alt', 'member')])
    for spec in endpoints:
        kind, ep = spec.split('=', 1)
        svc = ks.services.create(NAMES.get(kind, kind), type=kind)
        ks.endpoints.create(svc, ep, interface='public',
                            region='RegionOne')


def main():
    d, port = sys.argv[1], int(sys.argv[2])
    os.makedirs(d, exist_ok=True)
    conf = os.path.join(d, 'keystone.conf')
    url = 'http://127.0.0.1:%d' % port
    with open(conf, 'w') as f:
        f.write('[DEFAULT]\nlog_file = %s/keystone.log\n'
                '[database]\nconnection = sqlite:///%s/keystone.db\n'
                '[token]\nprovider = fernet\nexpiration = 3600\n'
                '[fernet_tokens]\nkey_repository = %s/fernet-keys\n'
                '[fernet_receipts]\nkey_repository = %s/fernet-keys\n'
                '[credential]\nkey_repository = %s/credential-keys\n'
                # bcrypt's minimum cost: a test server, not a vault.
                '[identity]\npassword_hash_rounds = 4\n'
                % (d, d, d, d, d))
    manage(conf, 'db_sync')
    manage(conf, 'fernet_setup', '--keystone-user', str(os.getuid()),
           '--keystone-group', str(os.getgid()))
    manage(conf, 'credential_setup', '--keystone-user', str(os.getuid()),
           '--keystone-group', str(os.getgid()))
    manage(conf, 'bootstrap', '--bootstrap-password', 'admin',
           '--bootstrap-admin-url', url + '/v3',
           '--bootstrap-public-url', url + '/v3',
           '--bootstrap-internal-url', url + '/v3',
           '--bootstrap-region-id', 'RegionOne')
    os.environ['OS_KEYSTONE_CONFIG_FILES'] = conf
    endpoints = sys.argv[3:]
    # keystone's application parses the command line as its own options.
    sys.argv = sys.argv[:1]
    from keystone.server import wsgi
    keystone_app = wsgi.initialize_public_application()
    import threading
    one_at_a_time = threading.Lock()

    # SQLite takes one writer at a time: requests are answered one after
    # the other (concurrent token issues and user creations otherwise fail
    # with "database is locked").
    def app(environ, start_response):
        with one_at_a_time:
            return list(keystone_app(environ, start_response))

    class Server(socketserver.ThreadingMixIn, simple_server.WSGIServer):
        daemon_threads = True

    class Quiet(simple_server.WSGIRequestHandler):
        def log_message(self, *a):
            pass

    httpd = simple_server.make_server('127.0.0.1', port, app,
                                      server_class=Server,
                                      handler_class=Quiet)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    provision(url, endpoints)
    print('listening', flush=True)
    threading.Event().wait()


if __name__ == '__main__':
    main()

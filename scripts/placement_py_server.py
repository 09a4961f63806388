"""Real OpenStack Placement 16 (PyPI openstack-placement) on SQLite, noauth2,
served by wsgiref: the peer the HTTP Placement client is tested against.

usage: python placement_py_server.py DIR PORT [PROVIDERS]
(creates DIR/placement.conf and DIR/placement.db, syncs the schema, serves
127.0.0.1:PORT until killed; with PROVIDERS, first fills the tables with
that many compute providers, the data of the placement_compare bench:
uuid i = '%08x-0000-4000-8000-%012x' % (i, i), VCPU 64 (ratio 16),
MEMORY_MB 262144 (ratio 1.5), DISK_GB 2000)
"""
import os
import socketserver
import sys
from wsgiref import simple_server


def fill(path, n):
    import sqlite3
    db = sqlite3.connect(path)
    now = '2026-01-01 00:00:00'
    rps, invs = [], []
    for i in range(1, n + 1):
        u = '%08x-0000-4000-8000-%012x' % (i, i)
        rps.append((now, i, u, 'cn-%d' % i, 0, i, None))
        # standard resource class ids: os-resource-classes' order
        for rc, total, ratio in ((0, 64, 16.0), (1, 262144, 1.5),
                                 (2, 2000, 1.0)):
            invs.append((now, i, rc, total, 0, 1, total, 1, ratio))
    db.executemany('INSERT INTO resource_providers (created_at, id, uuid, '
                   'name, generation, root_provider_id, parent_provider_id) '
                   'VALUES (?, ?, ?, ?, ?, ?, ?)', rps)
    db.executemany('INSERT INTO inventories (created_at, resource_provider_id,'
                   ' resource_class_id, total, reserved, min_unit, max_unit, '
                   'step_size, allocation_ratio) VALUES (?, ?, ?, ?, ?, ?, ?, '
                   '?, ?)', invs)
    db.commit()
    db.close()


def main():
    d, port = sys.argv[1], int(sys.argv[2])
    os.makedirs(d, exist_ok=True)
    conf_file = os.path.join(d, 'placement.conf')
    with open(conf_file, 'w') as f:
        f.write('[api]\nauth_strategy = noauth2\n'
                '[placement_database]\nconnection = sqlite:///%s/placement.db\n'
                % d)
    from oslo_config import cfg
    from placement import conf, db_api, deploy
    from placement.db.sqlalchemy import migration
    c = cfg.ConfigOpts()
    conf.register_opts(c)
    c([], default_config_files=[conf_file])
    db_api.configure(c)
    migration.upgrade('head')
    if len(sys.argv) > 3:
        fill(os.path.join(d, 'placement.db'), int(sys.argv[3]))
    app = deploy.loadapp(c)

    class Server(socketserver.ThreadingMixIn, simple_server.WSGIServer):
        daemon_threads = True

    class Quiet(simple_server.WSGIRequestHandler):
        def log_message(self, *a):
            pass

    httpd = simple_server.make_server('127.0.0.1', port, app,
                                      server_class=Server,
                                      handler_class=Quiet)
    print('listening', flush=True)
    httpd.serve_forever()


if __name__ == '__main__':
    main()

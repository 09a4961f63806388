"""Real OpenStack Placement 16 (PyPI openstack-placement) on SQLite, noauth2,
served by wsgiref: the peer the HTTP Placement client is tested against.

usage: python placement_py_server.py DIR PORT
(creates DIR/placement.conf and DIR/placement.db, syncs the schema, serves
127.0.0.1:PORT until killed)
"""
import os
import socketserver
import sys
from wsgiref import simple_server


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

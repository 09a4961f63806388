"""Placement 16's own gabbi suite, over HTTP, against nova-placement-api.

usage: python placement_gabbi.py BINARY [FILE.yaml ...] [--json OUT]

Every gabbit file of openstack-placement 16.0.0 (placement/tests/
functional/gabbits) runs against a fresh nova-placement-api (its own
SQLite file, noauth2, a free port). The files' fixtures are stood in for
by classes of the same names here: each starts the server and sets the
environment variables the files read, as Placement's APIFixture does; the
fixtures that create data (AllocationFixture, SharedStorageFixture,
GranularFixture, NUMANetworkFixture, ...) run Placement's own fixture code
on its own in-memory database, then replay what it made (resource classes,
traits, providers, inventories, traits and aggregates of providers,
consumers and allocations) into our server over the API, with the same
uuids and names.

Prints one line per file (passed / failed / skipped of its tests) and,
with --json, writes {file: {"passed": n, "failed": n, "skipped": n,
"failures": [...]}}.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

from gabbi import fixture, handlers, suitemaker, utils

import placement
from placement.tests.functional.fixtures import gabbits as pfix

GABBITS = os.path.join(os.path.dirname(placement.__file__), 'tests',
                       'functional', 'gabbits')

BINARY = None
STATE = {}


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_server(port, secure_rbac=False, cors=None, policy=None):
    d = os.path.realpath(tempfile.mkdtemp(prefix='placement-gabbi-'))
    conf = os.path.join(d, 'placement.conf')
    with open(conf, 'w') as f:
        f.write('[placement_database]\nconnection = sqlite://%s/p.db\n'
                '[api]\nauth_strategy = noauth2\n'
                '[oslo_policy]\nenforce_new_defaults = %s\n'
                % (d, 'true' if secure_rbac else 'false'))
        if policy is not None:
            policy_file = os.path.join(d, 'policy.json')
            with open(policy_file, 'w') as p:
                json.dump(policy, p)
            f.write('policy_file = %s\n' % policy_file)
        opts = {k: v for k, v in (cors or {}).items() if v}
        if opts:
            f.write('[cors]\n' + ''.join(
                '%s = %s\n' % (k, ','.join(v)) for k, v in opts.items()))
    log = open(os.path.join(d, 'log'), 'w')
    proc = subprocess.Popen([BINARY, '--config', conf, '--port', str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    proc.tmpdir = d
    for _ in range(200):
        try:
            urllib.request.urlopen('http://127.0.0.1:%d/' % port, timeout=1)
            return proc
        except Exception:
            if proc.poll() is not None:
                raise RuntimeError('nova-placement-api exited; see %s' % d)
            time.sleep(0.05)
    raise RuntimeError('nova-placement-api did not answer')


def call(method, path, body=None, version='latest'):
    port = STATE['port']
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request('http://127.0.0.1:%d%s' % (port, path),
                                 data=data, method=method)
    req.add_header('x-auth-token', 'admin')
    req.add_header('openstack-api-version', 'placement %s' % version)
    if data is not None:
        req.add_header('content-type', 'application/json')
    try:
        with urllib.request.urlopen(req) as r:
            text = r.read()
            return r.status, json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        raise RuntimeError('%s %s: %s %s' % (method, path, e.code,
                                             e.read()[:400]))


def replay(engine):
    """Copies what Placement's fixture created into our server."""
    import os_resource_classes as orc
    import sqlalchemy as sa
    with engine.connect() as c:
        q = lambda s: list(c.execute(sa.text(s)))  # noqa: E731
        rcs = {r[0]: r[1] for r in q('SELECT id, name FROM resource_classes')}

        def rc_name(i):
            return rcs.get(i) or orc.STANDARDS[i]
        for name in rcs.values():
            if name.startswith('CUSTOM_'):
                call('PUT', '/resource_classes/%s' % name)
        traits = {r[0]: r[1] for r in q('SELECT id, name FROM traits')}
        for name in traits.values():
            if name.startswith('CUSTOM_'):
                call('PUT', '/traits/%s' % name)
        rps = q('SELECT id, uuid, name, parent_provider_id '
                'FROM resource_providers ORDER BY id')
        by_id = {r[0]: r for r in rps}
        done = set()
        while len(done) < len(rps):
            for r in rps:
                if r[0] in done or (r[3] and r[3] not in done):
                    continue
                body = {'uuid': r[1], 'name': r[2]}
                if r[3]:
                    body['parent_provider_uuid'] = by_id[r[3]][1]
                call('POST', '/resource_providers', body)
                done.add(r[0])
        for rid, r in by_id.items():
            uuid = r[1]
            inv = {}
            for row in q('SELECT resource_class_id, total, reserved, '
                         'min_unit, max_unit, step_size, allocation_ratio '
                         'FROM inventories WHERE resource_provider_id = %d '
                         'ORDER BY id' % rid):
                inv[rc_name(row[0])] = {
                    'total': row[1], 'reserved': row[2], 'min_unit': row[3],
                    'max_unit': row[4], 'step_size': row[5],
                    'allocation_ratio': row[6]}
            # One class at a time, as the fixtures add them (each bumps
            # the provider's generation).
            for rc, body in inv.items():
                body = dict(body, resource_class=rc)
                call('POST', '/resource_providers/%s/inventories' % uuid,
                     body)
            ts = [traits[row[0]] for row in q(
                'SELECT trait_id FROM resource_provider_traits '
                'WHERE resource_provider_id = %d' % rid)]
            if ts:
                _, cur = call('GET', '/resource_providers/%s' % uuid)
                call('PUT', '/resource_providers/%s/traits' % uuid,
                     {'resource_provider_generation': cur['generation'],
                      'traits': ts})
            aggs = [row[0] for row in q(
                'SELECT pa.uuid FROM resource_provider_aggregates rpa '
                'JOIN placement_aggregates pa ON pa.id = rpa.aggregate_id '
                'WHERE rpa.resource_provider_id = %d' % rid)]
            if aggs:
                _, cur = call('GET', '/resource_providers/%s' % uuid)
                call('PUT', '/resource_providers/%s/aggregates' % uuid,
                     {'resource_provider_generation': cur['generation'],
                      'aggregates': aggs})
        consumers = q('SELECT c.uuid, p.external_id, u.external_id '
                      'FROM consumers c JOIN projects p ON p.id = c.project_id '
                      'JOIN users u ON u.id = c.user_id ORDER BY c.id')
        for cu, project, user in consumers:
            allocs = {}
            for rp, rc, used in q(
                    "SELECT rp.uuid, a.resource_class_id, a.used "
                    "FROM allocations a JOIN resource_providers rp "
                    "ON rp.id = a.resource_provider_id "
                    "WHERE a.consumer_id = '%s'" % cu):
                allocs.setdefault(rp, {'resources': {}})['resources'][
                    rc_name(rc)] = used
            if allocs:
                call('PUT', '/allocations/%s' % cu,
                     {'allocations': allocs, 'project_id': project,
                      'user_id': user, 'consumer_generation': None},
                     version='1.28')


def check_generations(engine):
    """Our providers' generations against the fixture's (a mismatch would
    fail tests that name generations)."""
    import sqlalchemy as sa
    with engine.connect() as c:
        for uuid, gen in c.execute(sa.text(
                'SELECT uuid, generation FROM resource_providers')):
            _, ours = call('GET', '/resource_providers/%s' % uuid)
            if ours['generation'] != gen:
                print('generation of %s: fixture %s, ours %s'
                      % (uuid, gen, ours['generation']), file=sys.stderr)


def stand_in(name, base):
    """A fixture class named `name`: Placement's `base` for the data and
    the environment, our server for the requests."""

    class StandIn(fixture.GabbiFixture):
        def start_fixture(self):
            self.real = base()
            self.real.start_fixture()
            # The [cors] options the fixture set (CORSFixture), for ours.
            cors = self.real.conf_fixture.conf.cors
            # The policy rules the fixture set (OpenPolicyFixture), as
            # the policy file ours reads.
            policy = None
            if issubclass(base, pfix.OpenPolicyFixture):
                from placement import policy as placement_policy
                enforcer = placement_policy.get_enforcer()
                policy = {k: str(v) for k, v in enforcer.rules.items()}
            self.server = start_server(
                STATE['port'], getattr(base, '_secure_rbac', False),
                {'allowed_origin': cors.allowed_origin,
                 'allow_headers': cors.allow_headers}, policy)
            from placement import db_api
            engine = db_api.placement_context_manager.writer.get_engine()
            replay(engine)
            check_generations(engine)

        def stop_fixture(self):
            try:
                self.real.stop_fixture()
            finally:
                self.server.terminate()
                self.server.wait()
                shutil.rmtree(self.server.tmpdir, ignore_errors=True)

    StandIn.__name__ = name
    return StandIn


class Plain(fixture.GabbiFixture):
    """A fixture we do not stand in for (policy, CORS): nothing."""


class FixtureModule:
    def __getattr__(self, name):
        base = getattr(pfix, name, None)
        if base is not None and isinstance(base, type) and issubclass(
                base, pfix.APIFixture):
            return stand_in(name, base)
        return Plain


def why(tb):
    """The telling line of a failure's traceback."""
    lines = tb.strip().splitlines()
    for line in lines:
        if line.startswith(('AssertionError', 'gabbi.exception', 'httpx.')):
            return line[:700]
    for i, line in enumerate(lines):
        if 'Error' in line and not line.startswith(' '):
            return ' '.join(lines[i:i + 4])[:700]
    return ' '.join(lines[-3:])[:700]


def run_file(path):
    STATE['port'] = free_port()
    suite_dict = utils.load_yaml(yaml_file=path, safe=True)
    loader = unittest.TestLoader()
    name = os.path.splitext(os.path.basename(path))[0]
    suite = suitemaker.test_suite_from_dict(
        loader, name, suite_dict, os.path.dirname(path), '127.0.0.1',
        STATE['port'], FixtureModule(), None, prefix='',
        test_loader_name='placement_gabbi',
        handlers=[h() for h in handlers.RESPONSE_HANDLERS])
    result = unittest.TestResult()
    suite.run(result)
    failures = [(t.id().split('.')[-2], why(tb))
                for t, tb in result.failures + result.errors]
    skipped = len(result.skipped)
    failed = len(failures)
    return {'passed': result.testsRun - failed - skipped, 'failed': failed,
            'skipped': skipped, 'failures': failures}


def main():
    global BINARY
    args = sys.argv[1:]
    out = None
    if '--json' in args:
        i = args.index('--json')
        out = args[i + 1]
        del args[i:i + 2]
    BINARY = args[0]
    files = args[1:] or sorted(
        os.path.join(GABBITS, f) for f in os.listdir(GABBITS)
        if f.endswith('.yaml'))
    results = {}
    for p in files:
        if not os.path.isabs(p):
            p = os.path.join(GABBITS, p)
        try:
            r = run_file(p)
        except Exception as e:  # a file that cannot even start
            r = {'passed': 0, 'failed': 1, 'skipped': 0,
                 'failures': [('setup', repr(e)[:600])]}
        results[os.path.basename(p)] = r
        print('%-50s passed %3d failed %3d skipped %3d' % (
            os.path.basename(p), r['passed'], r['failed'], r['skipped']),
            flush=True)
    total = {k: sum(r[k] for r in results.values())
             for k in ('passed', 'failed', 'skipped')}
    print('TOTAL passed %(passed)d failed %(failed)d skipped %(skipped)d'
          % total)
    if out:
        with open(out, 'w') as f:
            json.dump(results, f, indent=1, sort_keys=True)


if __name__ == '__main__':
    main()

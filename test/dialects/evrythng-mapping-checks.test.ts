/**
 * The load-time checks of the keys added for EVRYTHNG scopes and foxtrackr names: `needs`
 * must name identity variables (on rules and allowed filters), `names` needs a {key} capture,
 * and `resource` rules may carry a {name}. Each broken file is reported with its position.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadMappings, type MappingFile } from '../../src/mapping/load.js';
import { shippedMappings } from '../mapping/shipped.js';

/** The shipped files with one dialect's text edited. */
function withDialect(name: string, edit: (text: string) => string): MappingFile[] {
  return shippedMappings().map((f) =>
    f.path.endsWith(`dialects/${name}.yaml`) ? { ...f, text: edit(f.text) } : f,
  );
}

describe('mapping checks of needs: and names:', () => {
  it('the shipped files load without errors', () => {
    assert.deepEqual(loadMappings(shippedMappings()).errors, []);
  });

  it('a rule needing an undeclared variable is an error with its position', () => {
    const m = loadMappings(
      withDialect('evrythng', (t) => t.replace('    needs: [account]\n', '    needs: [tenant]\n')),
    );
    assert.equal(m.errors.length, 1, m.errors.join('\n'));
    assert.match(m.errors[0] ?? '', /dialects\/evrythng\.yaml:\d+:\d+: unknown variable 'tenant'/);
  });

  it('an allowed filter needing an undeclared variable is an error', () => {
    const m = loadMappings(
      withDialect('evrythng', (t) =>
        t.replace(
          '{ filter: "/actions", kinds: [resource], needs: [account] }',
          '{ filter: "/actions", kinds: [resource], needs: [tenant] }',
        ),
      ),
    );
    assert.equal(m.errors.length, 1, m.errors.join('\n'));
    assert.match(m.errors[0] ?? '', /unknown variable 'tenant'/);
  });

  it('names: on a topic without {key} is an error', () => {
    const m = loadMappings(
      withDialect('evrythng', (t) =>
        t.replace(
          '  - name: location\n    topic: "/thngs/{thngId}/location"\n',
          '  - name: location\n    topic: "/thngs/{thngId}/location"\n    names: { loc: location }\n',
        ),
      ),
    );
    assert.equal(m.errors.length, 1, m.errors.join('\n'));
    assert.match(m.errors[0] ?? '', /'names' aliases the \{key\} capture/);
  });

  it('an empty alias under names: is refused by the schema', () => {
    const m = loadMappings(
      withDialect('foxtrackr', (t) => t.replace('names: { bat: battery,', 'names: { bat: "",')),
    );
    assert.ok(m.errors.length >= 1);
    assert.match(m.errors.join('\n'), /dialects\/foxtrackr\.yaml/);
  });
});

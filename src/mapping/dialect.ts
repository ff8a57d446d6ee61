/**
 * The compiled form of a dialect file: what the session mapper runs. Built once at load by
 * compile.ts; nothing here is parsed per message.
 */
import type { QoS } from 'mqtt-packet';
import type { Quirks } from '../core/contract.js';
import type { Codec } from './codecs.js';
import type { Kind } from './model.js';
import type { Template, Vars } from './template.js';

/** Capture names that come from the message rather than from the identity. */
export const MESSAGE_CAPTURES = ['key', 'name'] as const;

export interface Rule {
  readonly name: string;
  readonly tpl: Template;
  /** Alternative spellings matched on input (`$resource/`), never produced. */
  readonly alts: readonly Template[];
  readonly up: Kind | undefined;
  readonly down: Kind | undefined;
  readonly codec: Codec;
  /** The topic carries the sample key ({key}) or the name ({name}). */
  readonly keyCap: boolean;
  readonly nameCap: boolean;
  /** A fixed key for single-key codecs on topics without {key}. */
  readonly fixedKey: string | undefined;
  /** Captures bound to identity variables (must equal the session's values). */
  readonly identityCaps: readonly string[];
  /** Identity variables the session must have for the rule to be usable (e.g. an account scope). */
  readonly needs: readonly string[];
  /** Aliases of the {key} capture: topic level -> canonical key (applied by the template). */
  readonly keyNames: Readonly<Record<string, string>> | undefined;
  readonly scheme: string | undefined;
  /** Filter used to subscribe to this rule's topic (defaults to the template with wildcards). */
  readonly subscribe: Template | undefined;
  readonly qos: QoS | undefined;
  /** The same topic is used in both directions: uplinks may come back as downlinks. */
  readonly echo: boolean;
}

export type FilterLevel = { lit: string } | { cap: string };

export interface AllowedFilter {
  readonly source: string;
  readonly levels: readonly FilterLevel[];
  readonly kinds: readonly Kind[];
  /** Identity variables the session must have for this filter to be allowed. */
  readonly needs: readonly string[];
}

export interface SouthScheme {
  readonly scheme: string;
  readonly clientId: readonly Template[] | undefined;
  readonly username: readonly Template[] | undefined;
  readonly password: readonly Template[] | undefined;
  readonly commonName: Template | undefined;
  /** Variable holding the credential this scheme proves (password var or certificate CN var). */
  readonly credential: string | undefined;
  /** The password is a JWT signed by the device: verified with the public key in variable `key`. */
  readonly jwt:
    | { readonly key: string; readonly audience: ((v: Readonly<Vars>) => string) | undefined }
    | undefined;
  /** Variables every successful match provides. */
  readonly vars: readonly string[];
}

export interface JwtSpec {
  readonly key: string;
  readonly alg: string;
  /** The claims for one identity (their `{var}` texts compiled at load). */
  readonly claims: (v: Readonly<Vars>) => Record<string, unknown>;
  readonly ttl: number;
}

export interface NorthScheme {
  readonly scheme: string;
  readonly clientId: ((v: Readonly<Vars>) => string) | undefined;
  readonly username: ((v: Readonly<Vars>) => string) | undefined;
  readonly password: ((v: Readonly<Vars>) => string) | JwtSpec | undefined;
  /** Variables the scheme needs: the first scheme whose variables are all known is used. */
  readonly vars: readonly string[];
}

export interface CompiledDialect {
  readonly name: string;
  readonly file: string;
  readonly versions: readonly number[];
  readonly keepaliveMax: number;
  /** As the north side: connect with clean session 0, so the platform keeps what arrives while the client is away. */
  readonly persistent: boolean;
  /** Highest QoS the platform accepts: publishes written for it are capped. */
  readonly maxQos: QoS;
  readonly identity: ReadonlySet<string>;
  readonly options: ReadonlySet<string>;
  /** Topic levels are percent-escaped (`escape: percent`, EVRYTHNG). */
  readonly percent: boolean;
  readonly rules: readonly Rule[];
  readonly upRules: readonly Rule[];
  readonly downRules: readonly Rule[];
  readonly subs: {
    readonly automatic: boolean;
    readonly allowed: readonly AllowedFilter[];
    readonly grantedQos: QoS | undefined;
    readonly otherwise: 'failure' | 'silent' | 'disconnect';
  };
  readonly southAuth: readonly SouthScheme[];
  readonly northAuth: readonly NorthScheme[];
  readonly anonymous: 'reject' | 'provision_only';
  readonly gateway:
    | { readonly key: (v: Readonly<Vars>) => string; readonly errors: Template | undefined }
    | undefined;
  readonly quirks: Quirks;
  /**
   * Largest single value (one resource) the device may send or be sent, in bytes; 0: no limit.
   * A raw value counts its bytes, a string its UTF-8 bytes, anything else its JSON text.
   */
  readonly maxValueBytes: number;
  readonly unknownTopic: 'drop' | 'disconnect' | 'error';
  readonly unsubscribe: 'pass' | 'ack_only';
}

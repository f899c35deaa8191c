// Rows of the admin console's SHOW CONFIG, driven by the settings table and written the way the ini file takes them.
import { PARAMS, type ParamSpec } from './params.ts';
import type { Config, Settings } from './types.ts';

export interface ShowConfigRow {
  key: string;
  value: string;
  default: string;
  /** 'yes' when RELOAD can change it, as PgBouncer prints it */
  changeable: 'yes' | 'no';
}

/** Formats a value so that writing it back into the ini file gives the same setting: times in the bare unit. */
export function formatParamValue(spec: ParamSpec, value: Settings[keyof Settings]): string {
  switch (spec.type) {
    case 'bool':
      return value === true ? '1' : '0';
    case 'time':
      return String(spec.bare === 'ms' ? value : (value as number) / 1000);
    case 'list':
      return (value as string[]).join(',');
    default:
      return String(value);
  }
}

export function showConfigRows(config: Config): ShowConfigRow[] {
  return PARAMS.map((spec: ParamSpec) => ({
    key: spec.name,
    value: formatParamValue(spec, config.settings[spec.name]),
    default: formatParamValue(spec, spec.default),
    changeable: spec.reloadable ? 'yes' : 'no',
  }));
}

// A strict parser for XML property lists (launchd jobs): the subset Apple's DTD allows, nothing
// lenient, so a plist that launchd would refuse fails the test that renders it.

export type PlistValue = string | number | boolean | Date | PlistValue[] | { [key: string]: PlistValue };

export function parsePlist(xml: string): PlistValue {
  let pos = 0;
  const fail = (what: string): never => {
    const line = xml.slice(0, pos).split("\n").length;
    throw new Error(`plist line ${line}: ${what}`);
  };
  const skipMisc = () => {
    for (;;) {
      const ws = /^\s*/.exec(xml.slice(pos));
      pos += ws?.[0].length ?? 0;
      if (xml.startsWith("<!--", pos)) {
        const end = xml.indexOf("-->", pos + 4);
        if (end < 0) fail("unterminated comment");
        const body = xml.slice(pos + 4, end);
        if (body.includes("--")) fail("`--` inside a comment");
        pos = end + 3;
      } else return;
    }
  };
  const decode = (text: string): string => {
    if (/<|&(?!(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);)/.test(text)) fail(`bad character data: ${text}`);
    return text.replace(/&(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);/g, (_, e: string) => {
      const named: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };
      if (e.startsWith("#x")) return String.fromCodePoint(parseInt(e.slice(2), 16));
      if (e.startsWith("#")) return String.fromCodePoint(parseInt(e.slice(1), 10));
      return named[e] ?? fail(`entity ${e}`);
    });
  };
  const openTag = (): { name: string; selfClosing: boolean } => {
    skipMisc();
    const m = /^<([A-Za-z]+)((?:\s+[A-Za-z]+="[^"<&]*")*)\s*(\/?)>/.exec(xml.slice(pos));
    if (m === null || m[1] === undefined) return fail("expected an element");
    if (m[2] !== "" && m[1] !== "plist") fail(`attributes on <${m[1]}>`);
    pos += m[0].length;
    return { name: m[1], selfClosing: m[3] === "/" };
  };
  const closeTag = (name: string) => {
    skipMisc();
    const expected = `</${name}>`;
    if (!xml.startsWith(expected, pos)) fail(`expected ${expected}`);
    pos += expected.length;
  };
  const text = (name: string): string => {
    const end = xml.indexOf(`</${name}>`, pos);
    if (end < 0) fail(`unterminated <${name}>`);
    const raw = xml.slice(pos, end);
    pos = end + name.length + 3;
    return decode(raw);
  };
  const value = (): PlistValue => {
    const { name, selfClosing } = openTag();
    if (name === "true" || name === "false") {
      if (!selfClosing) closeTag(name);
      return name === "true";
    }
    if (selfClosing) {
      if (name === "string") return "";
      if (name === "dict") return {};
      if (name === "array") return [];
      return fail(`empty <${name}/>`);
    }
    switch (name) {
      case "string":
        return text("string");
      case "integer": {
        const t = text("integer").trim();
        if (!/^[+-]?\d+$/.test(t)) fail(`bad integer ${t}`);
        return Number(t);
      }
      case "real": {
        const t = text("real").trim();
        if (Number.isNaN(Number(t)) || t === "") fail(`bad real ${t}`);
        return Number(t);
      }
      case "date": {
        const t = text("date").trim();
        if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/.test(t)) fail(`bad date ${t}`);
        return new Date(t);
      }
      case "data": {
        const t = text("data").replace(/\s+/g, "");
        if (!/^[A-Za-z0-9+/]*={0,2}$/.test(t)) fail("bad base64 data");
        return t;
      }
      case "array": {
        const items: PlistValue[] = [];
        for (;;) {
          skipMisc();
          if (xml.startsWith("</array>", pos)) {
            pos += "</array>".length;
            return items;
          }
          items.push(value());
        }
      }
      case "dict": {
        const dict: { [key: string]: PlistValue } = {};
        for (;;) {
          skipMisc();
          if (xml.startsWith("</dict>", pos)) {
            pos += "</dict>".length;
            return dict;
          }
          const tag = openTag();
          if (tag.name !== "key" || tag.selfClosing) fail("expected <key> in <dict>");
          const key = text("key");
          if (Object.hasOwn(dict, key)) fail(`duplicate key ${key}`);
          dict[key] = value();
        }
      }
      default:
        return fail(`unknown element <${name}>`);
    }
  };

  const decl = /^<\?xml version="1\.0" encoding="UTF-8"\?>/.exec(xml);
  if (decl === null) fail('missing <?xml version="1.0" encoding="UTF-8"?>');
  pos = decl?.[0].length ?? 0;
  skipMisc();
  // Apple's public identifier, current and old (nixpkgs' lib.generators.toPlist writes the old one).
  const doctype = [
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
    '<!DOCTYPE plist PUBLIC "-//Apple Computer//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
  ].find((d) => xml.startsWith(d, pos));
  if (doctype === undefined) return fail("missing the Apple plist DOCTYPE");
  pos += doctype.length;
  const root = openTag();
  if (root.name !== "plist" || root.selfClosing) fail("the root element must be <plist>");
  const result = value();
  closeTag("plist");
  skipMisc();
  if (pos !== xml.length) fail("content after </plist>");
  return result;
}

export function asDict(v: PlistValue | undefined): { [key: string]: PlistValue } {
  if (v === undefined || typeof v !== "object" || Array.isArray(v) || v instanceof Date)
    throw new Error("expected a dict");
  return v;
}

// Waits until the portals answer /readyz, so the first page.goto() does not race their start.
async function ready(base: string) {
  const url = base + "/readyz";
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      const r = await fetch(url);
      if (r.ok) return;
    } catch {}
    if (Date.now() > deadline) throw new Error(`portal at ${url} not ready after 60s`);
    await new Promise((res) => setTimeout(res, 250));
  }
}

export default async function globalSetup() {
  await ready(process.env.BASE_URL ?? "http://127.0.0.1:3000");
  if (process.env.OIDC_BASE_URL) await ready(process.env.OIDC_BASE_URL);
}

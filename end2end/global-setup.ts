// Waits until the portal answers /readyz, so the first page.goto() does not race its start.
export default async function globalSetup() {
  const url = (process.env.BASE_URL ?? "http://127.0.0.1:3000") + "/readyz";
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

// A frontend's use of every user endpoint, through the client generated from
// the schema (src/schema.d.ts, `npm run generate`). It is compiled, not run:
// a change of the API that breaks a frontend (a field renamed, a type changed,
// an endpoint moved) breaks this file's build (tests/access/test_typescript_client.py).
import createClient from "openapi-fetch";

import type { components, paths } from "./schema";

type Schemas = components["schemas"];

export function rewardsClient(baseUrl: string, userJwt: string) {
  return createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${userJwt}` } });
}

type Client = ReturnType<typeof rewardsClient>;

// Every error answer has one shape; `fields` names each field at fault.
export function explain(error: Schemas["Error"]): string {
  const fields = Object.entries(error.error.fields ?? {})
    .map(([name, problems]) => `${name}: ${problems.join(" ")}`)
    .join("; ");
  return fields ? `${error.error.message} (${fields})` : error.error.message;
}

// Amounts are exact decimal strings: shown as given, never parsed to a float.
function show(amount: string, asset: string): string {
  return `${amount} ${asset}`;
}

export async function campaignPage(client: Client, slug: string): Promise<string[]> {
  const lines: string[] = [];
  const list = await client.GET("/api/v1/campaigns");
  for (const campaign of list.data?.results ?? []) {
    lines.push(`${campaign.title}: ${campaign.phase}, ends ${campaign.ends_at}`);
  }
  const detail = await client.GET("/api/v1/campaigns/{slug}", { params: { path: { slug } } });
  if (detail.error) return [explain(detail.error)];
  const rules: Schemas["CampaignRules"] = detail.data.rules;
  lines.push(`target ${show(rules.volume_target, rules.asset)}`);
  for (const card of rules.cards) lines.push(`card ${card.percent}% weight ${card.weight}`);

  const eligibility = await client.GET("/api/v1/campaigns/{slug}/eligibility", {
    params: { path: { slug } },
  });
  if (eligibility.data && !eligibility.data.eligible) {
    lines.push(...eligibility.data.messages);
    return lines;
  }
  const registration = await client.POST("/api/v1/campaigns/{slug}/registration", {
    params: { path: { slug } },
  });
  if (registration.data) lines.push(`registered at ${registration.data.registered_at}`);

  const me = await client.GET("/api/v1/campaigns/{slug}/me", { params: { path: { slug } } });
  if (me.data) {
    lines.push(`volume ${me.data.valid_volume} of ${me.data.volume_target}`);
    lines.push(`spins: ${me.data.spins.coverage} coverage, ${me.data.spins.daily} daily`);
    for (const reward of me.data.rewards) {
      lines.push(`${reward.kind} ${reward.reference}: ${reward.amount} (${reward.status})`);
    }
  }
  const kind: Schemas["SpinKindEnum"] = "daily";
  const spin = await client.POST("/api/v1/campaigns/{slug}/spins", {
    params: { path: { slug } },
    body: { kind },
  });
  if (spin.error) lines.push(explain(spin.error));
  else if (spin.data.kind === "daily") lines.push(`won ${spin.data.amount} ${spin.data.asset}`);
  else lines.push(`card ${spin.data.card_percent}%`);

  const draw = await client.GET("/api/v1/campaigns/{slug}/draw", { params: { path: { slug } } });
  if (draw.data) {
    const covered = draw.data.orders.filter((order) => order.covered);
    lines.push(`${covered.length} of ${draw.data.losing_orders} orders covered`);
    lines.push(draw.data.how_to_verify);
  }
  return lines;
}

export async function voucherPage(client: Client): Promise<string[]> {
  const lines: string[] = [];
  const active = await client.GET("/api/v1/vouchers", { params: { query: { status: "active" } } });
  const history = await client.GET("/api/v1/vouchers", {
    params: { query: { status: "history" } },
  });
  const vouchers: Schemas["Voucher"][] = [
    ...(active.data?.results ?? []),
    ...(history.data?.results ?? []),
  ];
  for (const voucher of vouchers) {
    const status: Schemas["VoucherStatusEnum"] = voucher.status;
    lines.push(`#${voucher.id} ${voucher.remaining} of ${voucher.face_value}: ${status}`);
    const detail = await client.GET("/api/v1/vouchers/{voucher_id}", {
      params: { path: { voucher_id: voucher.id } },
    });
    for (const order of detail.data?.orders ?? []) {
      lines.push(`  ${order.order_id}: ${order.compensation} (${order.payout})`);
    }
  }
  const why = await client.GET("/api/v1/vouchers/orders/{order_id}", {
    params: { path: { order_id: "o-1" } },
  });
  if (why.data) lines.push(...why.data.messages, why.data.note);
  return lines;
}

export async function referralPage(client: Client): Promise<string[]> {
  const lines: string[] = [];
  const mine = await client.GET("/api/v1/referrals/me");
  if (mine.data) {
    lines.push(`code ${mine.data.code ?? "none yet"}, ${mine.data.referees} referees`);
    for (const program of mine.data.programs) lines.push(`${program.program}: ${program.rate}`);
  }
  const invitees = await client.GET("/api/v1/referrals/me/invitees");
  for (const invitee of invitees.data?.results ?? []) {
    lines.push(`${invitee.referee} since ${invitee.since}: ${invitee.status}`);
  }
  const commissions = await client.GET("/api/v1/referrals/me/commissions");
  for (const day of commissions.data?.results ?? []) {
    lines.push(`${day.day} ${day.program}: ${show(day.amount, day.asset)} (${day.status})`);
  }
  return lines;
}

export async function earnPage(client: Client): Promise<string[]> {
  const lines: string[] = [];
  const status = await client.GET("/api/v1/earn");
  if (status.data) {
    const terms = status.data.terms;
    lines.push(`APR ${terms.boosted_apr} up to ${terms.boosted_principal}, then ${terms.base_apr}`);
    for (const snapshot of status.data.today.snapshots) {
      lines.push(`${snapshot.at} ${snapshot.asset}: ${snapshot.principal}`);
    }
    for (const estimate of status.data.today.estimate) {
      lines.push(`today about ${show(estimate.interest, estimate.asset)}`);
    }
    if (!status.data.active) {
      const activated = await client.POST("/api/v1/earn/activation");
      if (activated.data) lines.push(`active since ${activated.data.since}`);
    }
  }
  const interest = await client.GET("/api/v1/earn/interest");
  for (const row of interest.data?.results ?? []) {
    lines.push(`${row.day} ${show(row.interest, row.asset)} (${row.status})`);
  }
  const stopped = await client.DELETE("/api/v1/earn/activation");
  if (stopped.data) lines.push(`active: ${stopped.data.active}`);
  return lines;
}

export async function ledgerPage(client: Client): Promise<string[]> {
  const lines: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await client.GET("/api/v1/me/ledger", {
      params: { query: cursor === undefined ? { page_size: 100 } : { cursor, page_size: 100 } },
    });
    if (page.error) return [explain(page.error)];
    for (const credit of page.data.results) {
      lines.push(`${credit.time} ${credit.kind}: ${show(credit.amount, credit.asset)}`);
    }
    cursor = page.data.next ? new URL(page.data.next).searchParams.get("cursor") ?? undefined : undefined;
  } while (cursor !== undefined);
  return lines;
}

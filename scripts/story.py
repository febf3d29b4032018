#!/usr/bin/env python3
"""The article's story over the HTTP/JSON gateway, as a merchant's and a bank channel's
programs would play it: nothing here links Rust.

The operator's part (accounts, cash in, the merchant, a voucher pool) goes through
`ledgerctl`, since the gateway never acts for the operator. Then, over HTTPS: the bank's web
channel (an API key) enrols the customer in e-Pay with the SMS code; the shop (its client
certificate) takes a payment confirmed by the customer's code, retries it under the same
Idempotency-Key, refunds part of it, reads its statement, reconciliation (JSON and CSV) and
events, sets and removes its webhook, and takes a card at its terminal; the channel claims a
voucher. Every answer is checked: status, amounts, and the typed error of each refusal.

Usage: scripts/story.py --dev-dir DATA_DIR [--gateway https://localhost:7400]
         [--ledgerctl target/release/ledgerctl] [--endpoints 127.0.0.1:7201,...]
Prints each step, then `N passed, 0 failed`; exits 1 on any failure.
"""

import argparse
import datetime
import glob
import json
import os
import random
import subprocess
import sys
import time

import requests

CST = datetime.timezone(datetime.timedelta(hours=8))
TIMEOUT_S = 30


class Story:
    def __init__(self, args):
        self.args = args
        self.certs = os.path.join(args.dev_dir, "certs")
        self.ca = os.path.join(self.certs, "ca.crt")
        self.base = args.gateway.rstrip("/") + "/v1"
        self.passed = 0
        self.failed = 0
        # Unique per run, so the story runs again on the same cluster.
        self.run = f"{int(time.time())}{random.randrange(1000):03d}"

    # --- checking ---------------------------------------------------------------------
    def check(self, ok, what):
        if ok:
            self.passed += 1
            print(f"  ok    {what}")
        else:
            self.failed += 1
            print(f"  FAIL  {what}")
        return ok

    def expect(self, response, status, what, error=None):
        body = response.text[:400]
        ok = response.status_code == status
        if ok and error is not None:
            ok = (
                response.headers.get("content-type", "").startswith("application/problem+json")
                and response.json().get("error") == error
            )
        self.check(ok, f"{what}: {status}{' ' + error if error else ''}"
                   + ("" if ok else f" (got {response.status_code}: {body})"))
        if not ok:
            raise SystemExit(self.finish())
        return response.json() if "json" in response.headers.get("content-type", "") else response.text

    def finish(self):
        print(f"{self.passed} passed, {self.failed} failed")
        return 1 if self.failed else 0

    # --- parties ----------------------------------------------------------------------
    def ledgerctl(self, *argv):
        out = subprocess.run(
            [self.args.ledgerctl, "--certs", self.certs, "--data-dir", self.args.dev_dir,
             "--endpoints", self.args.endpoints, "--json", *argv],
            capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            print(f"ledgerctl {' '.join(argv)} failed: {out.stdout}{out.stderr}")
            raise SystemExit(1)
        return json.loads(out.stdout)

    def key(self, name):
        with open(os.path.join(self.certs, f"{name}.apikey")) as f:
            return {"Authorization": f"Bearer {f.read().strip()}"}

    def as_key(self, name):
        headers = self.key(name)
        return lambda method, path, **kw: requests.request(
            method, self.base + path, headers={**headers, **kw.pop("headers", {})},
            verify=self.ca, timeout=TIMEOUT_S, **kw)

    def as_cert(self, name):
        cert = (os.path.join(self.certs, f"{name}.crt"), os.path.join(self.certs, f"{name}.key"))
        return lambda method, path, **kw: requests.request(
            method, self.base + path, cert=cert, verify=self.ca, timeout=TIMEOUT_S, **kw)

    def sms_code(self, challenge):
        """The code of SMS `challenge`, read from the dev outbox as the customer reads their phone."""
        deadline = time.time() + TIMEOUT_S
        while time.time() < deadline:
            for path in glob.glob(os.path.join(self.args.dev_dir, "node*", "sms-outbox.jsonl")):
                with open(path, encoding="utf-8") as f:
                    for line in f:
                        try:
                            sms = json.loads(line)
                        except ValueError:
                            continue
                        if sms.get("id") == challenge and "验证码" in sms.get("text", ""):
                            at = sms["text"].index("验证码") + len("验证码")
                            return sms["text"][at:at + 6]
            time.sleep(0.1)
        self.check(False, f"SMS for challenge {challenge} arrived")
        raise SystemExit(self.finish())


def luhn(body):
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return body + str((10 - total % 10) % 10)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev-dir", required=True)
    parser.add_argument("--gateway", default="https://localhost:7400")
    parser.add_argument("--ledgerctl", default="target/release/ledgerctl")
    parser.add_argument("--endpoints", default="127.0.0.1:7201,127.0.0.1:7202,127.0.0.1:7203",
                        help="the nodes' client ports, for ledgerctl's (the operator's) part")
    s = Story(parser.parse_args())
    run = s.run
    card = luhn("622202" + run[-12:].rjust(12, "0"))
    shop_card = luhn("622203" + run[-12:].rjust(12, "0"))
    phone = "138" + run[-8:]
    shop_phone = "139" + run[-8:]
    today = datetime.datetime.now(CST).date().isoformat()

    print("The bank opens 小王's card and the shop's settlement account, and registers the shop.")
    payer = s.ledgerctl("open-account", "--name", "小王", "--card", card, "--password", "135790",
                        "--phone", phone)["account"]
    s.ledgerctl("deposit", str(payer), "1000")
    shop_account = s.ledgerctl("open-account", "--name", "shop", "--card", shop_card,
                               "--password", "246801", "--phone", shop_phone)["account"]
    merchant = s.ledgerctl("merchant", "register", "--kind", "pos", "--name", "小店",
                           "--account", str(shop_account), "--phone", shop_phone,
                           "--terminals", "2")["merchant"]
    pool = s.ledgerctl("pool", "create", "--name", "满100减10", "--face", "10",
                       "--capacity", "100")["pool"]
    s.check(merchant <= 16, f"merchant {merchant} has a dev certificate")
    shop = s.as_cert(f"merchant-{merchant}")
    channel = s.as_key("channel-web")
    other_shop = s.as_cert(f"merchant-{merchant % 16 + 1}")

    print("Nobody gets in without credentials.")
    s.expect(requests.get(s.base + "/status", verify=s.ca, timeout=TIMEOUT_S), 401,
             "no credentials", "Unauthenticated")
    s.expect(requests.get(s.base + "/status", verify=s.ca, timeout=TIMEOUT_S,
                          headers={"Authorization": "Bearer lk_" + "0" * 64}), 401,
             "an unknown API key", "Unauthenticated")
    status = s.expect(channel("GET", "/status"), 200, "the channel reads the cluster's status")
    s.check(status["leader"] is not None, "the cluster has a leader")

    print("The bank's web channel enrols 小王 in e-Pay.")
    started = s.expect(channel("POST", "/epay/enrolments",
                               json={"card_number": card, "phone": phone}), 201, "step 1")
    s.check(started["account"] == payer, "the enrolment is 小王's account")
    s.expect(channel("POST", f"/epay/enrolments/{payer}/alias",
                     json={"card_password": "000000", "alias": "xiaowang"}), 422,
             "a wrong card password", "WrongCardPassword")
    s.expect(channel("POST", f"/epay/enrolments/{payer}/alias",
                     json={"card_password": "135790", "alias": "xiaowang"}), 200, "step 2")
    sent = s.expect(channel("POST", f"/epay/enrolments/{payer}/confirm"), 200, "step 3: a code")
    code = s.sms_code(sent["challenge"])
    s.expect(channel("POST", f"/epay/enrolments/{payer}/activate", json={"code": code}), 200,
             "step 4: activated")
    credential = s.expect(channel("GET", f"/epay/credentials/{payer}"), 200, "the credential")
    s.check(credential["alias"] == "xiaowang", "its alias")
    s.expect(channel("PUT", f"/epay/credentials/{payer}/limits",
                     json={"per_payment_fen": 100_000, "per_day_fen": 300_000}), 200,
             "limits set")
    s.expect(shop("POST", "/epay/enrolments", json={"card_number": card, "phone": phone}), 403,
             "a merchant may not enrol customers", "Forbidden")

    print("The channel claims a voucher for 小王.")
    s.expect(channel("POST", f"/pools/{pool}/claims", json={"account": payer}), 201, "claimed")
    s.expect(channel("POST", f"/pools/{pool}/claims", json={"account": payer}), 409,
             "one voucher per account", "AlreadyClaimed")
    voucher = s.expect(channel("GET", f"/accounts/{payer}/vouchers/{pool}"), 200, "the voucher")
    s.check(voucher["face_value_fen"] == 1000, "worth 10 yuan")

    print("小王 pays the shop 100 yuan; the shop retries under the same Idempotency-Key.")
    order = f"order-{run}"
    body = {"phone": phone, "last_six": card[-6:], "amount_fen": 10_000, "order_id": order}
    idem = {"Idempotency-Key": f"pay-{run}"}
    pending = s.expect(shop("POST", "/payments", json=body, headers=idem), 201, "begun")
    again = s.expect(shop("POST", "/payments", json=body, headers=idem), 201, "retried")
    s.check(again["payment"] == pending["payment"], "the retry is the same payment")
    s.expect(shop("POST", "/payments", json={**body, "amount_fen": 20_000}, headers=idem), 409,
             "the same key for another request", "IdempotencyKeyReused")
    payment = pending["payment"]
    s.expect(other_shop("GET", f"/payments/{payment}"), 403, "another merchant may not read it",
             "Forbidden")
    code = s.sms_code(pending["challenge"])
    wrong = "000000" if code != "000000" else "111111"
    s.expect(shop("POST", f"/payments/{payment}/confirm", json={"code": wrong}), 422,
             "a wrong code", "WrongOtp")
    settled = s.expect(shop("POST", f"/payments/{payment}/confirm", json={"code": code},
                            headers={"Idempotency-Key": f"confirm-{run}"}), 200, "confirmed")
    s.check(settled["bill_fen"] == 10_000 and settled["debited_fen"] == 9_000
            and settled["voucher_pool"] == pool,
            "the voucher paid 10 yuan, 小王's card 90 yuan")
    replay = s.expect(shop("POST", f"/payments/{payment}/confirm", json={"code": code},
                           headers={"Idempotency-Key": f"confirm-{run}"}), 200,
                      "the confirmation retried")
    s.check(replay == settled, "the retry answers the first answer")
    view = s.expect(shop("GET", f"/payments/{payment}"), 200, "the payment")
    s.check(view["state"] == "settled" and view["payee_merchant"] == merchant, "settled to the shop")

    print("The shop refunds 30 yuan.")
    refund = s.expect(shop("POST", f"/payments/{payment}/refunds", json={"amount_fen": 3_000},
                           headers={"Idempotency-Key": f"refund-{run}"}), 201, "refunded")
    s.check(refund["refundable_fen"] == 7_000, "70 yuan left to refund")
    s.expect(shop("POST", f"/payments/{payment}/refunds", json={"amount_fen": 8_000}), 422,
             "no more than what is left", "RefundExceedsBill")
    account = s.expect(channel("GET", f"/accounts/{payer}"), 200, "小王's account")
    refunded_to_payer = refund["to_payer_fen"]
    s.check(account["balance_fen"] == 100_000 - 9_000 + refunded_to_payer,
            f"balance {account['balance_fen']} fen = 1000 yuan - 90 + {refunded_to_payer / 100}")

    print("A card at the shop's terminal.")
    swiped = s.expect(shop("POST", "/swipes", json={"terminal": 1, "card_number": card,
                                                    "pin": "135790", "amount_fen": 2_500,
                                                    "receipt": f"r-{run}"}), 201, "swiped")
    s.check(swiped["bill_fen"] == 2_500, "25 yuan")
    s.expect(shop("POST", "/swipes", json={"terminal": 1, "card_number": card, "pin": "999999",
                                           "amount_fen": 2_500, "receipt": f"r2-{run}"}), 422,
             "a wrong PIN", "WrongCardPassword")

    print("Afterwards: statement, reconciliation, events.")
    statement = s.expect(shop("GET", f"/accounts/{shop_account}/statement"), 200,
                         "the settlement account's statement")
    causes = [r["cause"] for r in statement["rows"]]
    s.check(statement["closing_balance_fen"] - statement["opening_balance_fen"]
            == sum(r["amount_fen"] for r in statement["rows"]),
            f"rows add up ({', '.join(causes)})")
    day = s.expect(shop("GET", f"/merchants/{merchant}/reconciliation/{today}"), 200,
                   "today's reconciliation")
    totals = day["totals"]
    s.check(totals["payments"] == 1 and totals["swipes"] == 1 and totals["refunds"] == 1,
            "one payment, one swipe, one refund")
    s.check(totals["net_fen"] == day["statement"]["closing_balance_fen"]
            - day["statement"]["opening_balance_fen"], "net equals the account's movement")
    csv = s.expect(shop("GET", f"/merchants/{merchant}/reconciliation/{today}/csv"), 200,
                   "the CSV file")
    lines = csv.strip().splitlines()
    s.check(lines[0].startswith("seq,log_index,at_ms") and len(lines) == 1 + len(day["statement"]["rows"]),
            f"a header and {len(lines) - 1} rows")
    events = s.expect(shop("GET", f"/merchants/{merchant}/events"), 200, "the events")
    kinds = [e["type"] for e in events["events"]]
    s.check(kinds[:3] == ["payment.settled", "payment.refunded", "payment.settled"],
            f"settled, refunded, settled ({kinds})")
    s.expect(other_shop("GET", f"/merchants/{merchant}/events"), 403,
             "not another merchant's events", "Forbidden")

    print("The shop sets and removes a webhook.")
    hook = s.expect(shop("PUT", f"/merchants/{merchant}/webhook",
                         json={"url": "https://shop.example.invalid/ledger"}), 200, "set")
    s.check(hook["secret"].startswith("whsec_"), "its signing secret")
    got = s.expect(shop("GET", f"/merchants/{merchant}/webhook"), 200, "read")
    s.check(got["url"] == "https://shop.example.invalid/ledger", "its URL")
    s.expect(shop("DELETE", f"/merchants/{merchant}/webhook"), 204, "removed")
    s.expect(shop("GET", f"/merchants/{merchant}/webhook"), 404, "gone", "NotFound")

    print("Bad requests change nothing.")
    s.expect(shop("POST", "/payments", data="{", headers={"content-type": "application/json"}), 400,
             "not JSON", "MalformedJson")
    bad = shop("POST", "/swipes", json={"terminal": 1, "card_number": int(card), "pin": "135790",
                                        "amount_fen": 1, "receipt": "x"})
    s.expect(bad, 422, "a card number of the wrong type", "InvalidBody")
    s.check(card not in bad.text, "the error does not echo the card number")
    s.expect(shop("POST", "/payments", data=json.dumps(body), headers={"content-type": "text/plain"}),
             415, "not application/json", "UnsupportedMediaType")
    s.expect(shop("POST", "/payments", json={**body, "order_id": "x" * 20_000}), 413,
             "a body over the limit", "BodyTooLarge")
    s.expect(shop("POST", "/payments", json={**body, "order_id": "x" * 2_000_000}), 413,
             "a body of 2 MB: answered, not cut off", "BodyTooLarge")
    s.expect(shop("POST", "/payments", json={**body, "extra": 1}), 422, "an unknown field",
             "InvalidBody")
    account = s.expect(channel("GET", f"/accounts/{payer}"), 200, "小王's account again")
    s.check(account["balance_fen"] == 100_000 - 9_000 + refunded_to_payer - 2_500,
            "only the payment, the refund and the swipe moved money")
    return s.finish()


if __name__ == "__main__":
    sys.exit(main())

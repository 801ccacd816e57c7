"""Makes an Event Hubs SAS token exactly as Azure's published samples do.

An implementation independent of Tracklog's, used by the integration tests:
    python3 azure_sas.py URI POLICY KEY EXPIRY_UNIX_SECONDS [--dotnet]

Without --dotnet it follows the Python sample (quote_plus: uppercase escapes).
With --dotnet it follows the C# sample, whose HttpUtility.UrlEncode writes
lowercase escapes, for the resource that is signed and for the signature.
"""
import base64
import hashlib
import hmac
import re
import sys
import urllib.parse


def dotnet_url_encode(text):
    encoded = urllib.parse.quote_plus(text, safe="-_.!*()")
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), encoded)


def generate_sas_token_dotnet(uri, policy_name, key, expiry):
    encoded_uri = dotnet_url_encode(uri)
    string_to_sign = (encoded_uri + "\n" + str(expiry)).encode("utf-8")
    digest = hmac.HMAC(key.encode("utf-8"), string_to_sign, hashlib.sha256).digest()
    signature = dotnet_url_encode(base64.b64encode(digest).decode("ascii"))
    return "SharedAccessSignature sr={}&sig={}&se={}&skn={}".format(
        encoded_uri, signature, expiry, policy_name
    )


def generate_sas_token(uri, policy_name, key, expiry):
    encoded_uri = urllib.parse.quote_plus(uri)
    string_to_sign = (encoded_uri + "\n" + str(expiry)).encode("utf-8")
    digest = hmac.HMAC(key.encode("utf-8"), string_to_sign, hashlib.sha256).digest()
    signature = urllib.parse.quote(base64.b64encode(digest))
    return "SharedAccessSignature sr={}&sig={}&se={}&skn={}".format(
        encoded_uri, signature, expiry, policy_name
    )


if __name__ == "__main__":
    uri, policy, key, expiry = sys.argv[1:5]
    make = generate_sas_token_dotnet if "--dotnet" in sys.argv[5:] else generate_sas_token
    print(make(uri, policy, key, int(expiry)))

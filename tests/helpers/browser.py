"""A real headless Chromium (Debian's chromium through its chromedriver, both installed by `make
setup`) driving the review page the way a person does: open, click, wait for "saved"."""

from __future__ import annotations

import base64
import hashlib
import shutil
from pathlib import Path
from typing import Any

import pytest


def spki_pin(cert: Path) -> str:
    """base64(sha256(SubjectPublicKeyInfo)) of a PEM certificate: what Chromium's
    --ignore-certificate-errors-spki-list takes to trust exactly that certificate (the local test
    CA is not in the browser's trust store), and nothing else."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    key = x509.load_pem_x509_certificate(cert.read_bytes()).public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def chromium(trust_cert: Path | None = None) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not binary or not driver:
        pytest.fail("chromium and chromedriver are needed for the review page test: run `make setup` "
                    "(it installs Debian's chromium and chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"):
        options.add_argument(flag)
    if trust_cert is not None:
        options.add_argument(f"--ignore-certificate-errors-spki-list={spki_pin(trust_cert)}")
    # The driver Debian ships with the browser: no download (Selenium Manager is never asked).
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


def review_in_browser(url: str, reject_id: str, trust_cert: Path | None = None, timeout: float = 60.0) -> None:
    """Open the review page at ``url`` (token in the fragment), reject row ``reject_id`` with a
    click, approve the test set, and wait until the page shows both saved."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser = chromium(trust_cert)
    try:
        browser.get(url)
        wait = WebDriverWait(browser, timeout)
        wait.until(lambda b: "loaded" in b.find_element(By.ID, "status").text
                   or b.find_element(By.ID, "error").text)
        assert not browser.find_element(By.ID, "error").text, browser.find_element(By.ID, "error").text
        assert "#token" not in browser.current_url  # the token left the address bar
        row = browser.find_element(By.CSS_SELECTOR, f'tr[data-row-id="{reject_id}"]')
        row.find_element(By.CSS_SELECTOR, "button.reject").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "saved"))
        wait.until(ec.text_to_be_present_in_element(
            (By.CSS_SELECTOR, f'tr[data-row-id="{reject_id}"] td.decision'), "rejected by hand"))
        browser.find_element(By.ID, "approve-test").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "test-status"), "approved"))
        assert not browser.find_element(By.ID, "error").text, browser.find_element(By.ID, "error").text
    finally:
        browser.quit()

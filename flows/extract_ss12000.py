"""Extract flow: ss12000."""

from flows._extract import make_extract_flow

extract_ss12000 = make_extract_flow("ss12000")

if __name__ == "__main__":
    extract_ss12000()

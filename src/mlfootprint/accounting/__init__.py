"""mlfootprint.accounting"""
